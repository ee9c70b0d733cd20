export type { TxConnection, TxConnectionSource, Outcome, TxLog, RecoveryDecision, InDoubtTransaction, TxObserver, PreludeEvent } from './types.js';
export { NO_TX_OBSERVER } from './types.js';
export { TransactionManager, type TransactionManagerOptions } from './transaction-manager.js';
export { GlobalTransaction, type GlobalTransactionState } from './global-transaction.js';
export { Failpoints, FAILPOINT_NAMES, type FailpointName, type FailpointAction, type FailpointRule } from './failpoints.js';
export { DeadlockDetector, findDeadlocks, type WaitEdge, type DeadlockCycle } from './deadlock-detector.js';
export { parsePreparedGid } from './gid.js';
