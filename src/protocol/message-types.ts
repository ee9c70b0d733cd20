import type { BackendMessage, FrontendMessage } from './messages.js';

/** The (F) message whose `type` is `T`. */
export type Frontend<T extends FrontendMessage['type']> = Extract<FrontendMessage, { readonly type: T }>;

/** The (B) message whose `type` is `T`. */
export type Backend<T extends BackendMessage['type']> = Extract<BackendMessage, { readonly type: T }>;
