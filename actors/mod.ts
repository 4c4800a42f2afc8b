/**
 * The actor runtime: bounded mailboxes, typed actors with `tell` and `ask`, and one_for_one
 * supervisors after Erlang/OTP.
 *
 * @example
 * const log = createLogger("trendedge");
 * const counter = createActor("counter", {
 *   init: () => 0,
 *   receive: (n, msg: { by: number }) => n + msg.by,
 * }, { log });
 * const root = new Supervisor({ name: "root", intensity: 5, periodMs: 30_000, log });
 * await root.start([
 *   { id: "counter", start: () => counter.run(), restart: "permanent", shutdownMs: 1000 },
 * ]);
 * await counter.ref.tell({ by: 1 });
 * await root.stop();
 *
 * @module
 */

export { Mailbox, MailboxClosedError, type MailboxOptions } from "./mailbox.ts";
export {
  type Actor,
  type ActorContext,
  type ActorOptions,
  type ActorRef,
  type ActorStatus,
  ActorStoppedError,
  type AskOptions,
  AskTimeoutError,
  type Behavior,
  createActor,
  type Reply,
} from "./actor.ts";
export {
  type BackoffOptions,
  type ChildSpec,
  type ChildState,
  type ChildStatus,
  type RestartPolicy,
  type RunningChild,
  Supervisor,
  SupervisorGaveUpError,
  type SupervisorOptions,
} from "./supervisor.ts";
