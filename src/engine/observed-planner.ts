import type { ShardGateConfig } from '../config/types.js';
import type { Metrics } from '../observe/metrics.js';
import { SPAN, shardgateAttributes, startSpan, tracingLive } from '../observe/tracing.js';
import type { Plan } from '../planner/plan.js';
import { Planner, type RouteContext } from '../planner/planner.js';

type Params = Parameters<Planner['plan']>[1];

/**
 * The planner, reporting each routing decision: `shardgate_routing_decisions_total`
 * by the Plan's route (statements that run on shards: ShardsPlans and
 * INSERT … SELECT's target), and a `shardgate.route` span carrying the
 * route. Plans are exactly those of `Planner`.
 */
export class ObservedPlanner extends Planner {
  readonly #metrics: Metrics;
  readonly #tracing: boolean;

  constructor(config: ShardGateConfig, metrics: Metrics, tracing: boolean) {
    super(config);
    this.#metrics = metrics;
    this.#tracing = tracing;
  }

  override plan(sql: string, params: Params, ctx: RouteContext): Plan {
    if (!this.#tracing || !tracingLive()) {
      const plan = super.plan(sql, params, ctx);
      if (plan.kind === 'shards') this.#metrics.routed(plan.route);
      return plan;
    }
    const span = startSpan(SPAN.route, shardgateAttributes({}));
    try {
      const plan = super.plan(sql, params, ctx);
      if (plan.kind === 'shards') {
        this.#metrics.routed(plan.route);
        span.setAttributes(shardgateAttributes({ route: plan.route }));
      }
      return plan;
    } finally {
      span.end();
    }
  }
}
