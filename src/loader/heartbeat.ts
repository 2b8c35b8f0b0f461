// A load waits on the database all the time, and a server that stops answering without closing
// anything (paused, a network black hole) leaves every statement waiting forever: no error ever
// comes. The heartbeat pings the server on the connection that holds the batch's lock; when a
// ping gets no answer within the stall timeout, or that connection is lost (and the lock with it),
// the load is told, and it then drops its connections, which fails every statement in flight, and
// the batch with them. The pings also keep that connection from idling past the server's
// wait_timeout, which would release the lock in the middle of the load.
import { Socket } from 'node:net';
import type { PoolConnection } from 'mysql2/promise';

/** A load's default: far above a ping's time on a busy server, far below "forever". */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/** The load cannot go on: the database stopped answering, or the batch lock's connection is gone. */
export class LoadInterruptedError extends Error {}

export interface Heartbeat {
  stop(): void;
}

/**
 * Pings `connection` every second (more often for a timeout under 3 s); calls `onFailure` once,
 * and stops, when a ping is not answered within `timeoutMs` or fails.
 */
export function startHeartbeat(connection: PoolConnection, timeoutMs: number, onFailure: (error: LoadInterruptedError) => void): Heartbeat {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const intervalMs = Math.min(1_000, Math.max(50, Math.floor(timeoutMs / 3)));
  const fail = (error: LoadInterruptedError): void => {
    if (stopped) return;
    stopped = true;
    onFailure(error);
  };
  const beat = (): void => {
    timer = setTimeout(() => {
      let answered = false;
      const deadline = setTimeout(() => {
        if (!answered) fail(new LoadInterruptedError(`the database stopped answering: no reply to a ping within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      deadline.unref();
      connection.query('SELECT 1').then(
        () => {
          answered = true;
          clearTimeout(deadline);
          if (!stopped) beat();
        },
        (error: unknown) => {
          answered = true;
          clearTimeout(deadline);
          const reason = error instanceof Error ? error.message : String(error);
          fail(new LoadInterruptedError(`the connection holding the batch's lock was lost (${reason})`));
        },
      );
    }, intervalMs);
    // The heartbeat alone never keeps the process alive.
    timer.unref();
  };
  beat();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/**
 * Fails every command waiting on a connection (mysql2's callback-API connection, as the pool's
 * 'connection' event hands it) with `error`, now. mysql2's destroy() only ends the socket politely
 * and then ignores its close, so a statement in flight on a server that does not answer would
 * wait forever; destroying the socket with an error makes mysql2 fail each command queued on it
 * with that error, and the pool drops the connection.
 */
export function dropConnection(connection: unknown, error: Error): void {
  const socket: unknown = typeof connection === 'object' && connection !== null ? Reflect.get(connection, 'stream') : undefined;
  if (socket instanceof Socket) socket.destroy(error);
}
