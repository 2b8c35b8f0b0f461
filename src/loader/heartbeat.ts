// A load waits on the database all the time, and a server that stops answering without closing
// anything (paused, a network black hole) leaves every statement waiting forever: no error ever
// comes. The heartbeat pings the server on a connection of its own; when a ping gets no answer
// within the stall timeout, the load is told, and it then drops its connections, which fails
// every statement in flight, and the batch with them.
import { Socket } from 'node:net';
import type { PoolConnection } from 'mysql2/promise';

/** A load's default: far above a ping's time on a busy server, far below "forever". */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

export class DatabaseStalledError extends Error {}

export interface Heartbeat {
  stop(): void;
}

/**
 * Pings `connection` every `timeoutMs / 3` (at most every 5 s); calls `onStalled` once, when a
 * ping is not answered within `timeoutMs`, and stops. Any other failure of the ping (the
 * connection lost) is left to the statements of the load, which meet it too.
 */
export function startHeartbeat(connection: PoolConnection, timeoutMs: number, onStalled: (error: DatabaseStalledError) => void): Heartbeat {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const intervalMs = Math.min(5_000, Math.max(100, Math.floor(timeoutMs / 3)));
  const beat = (): void => {
    timer = setTimeout(() => {
      let answered = false;
      const deadline = setTimeout(() => {
        if (answered || stopped) return;
        stopped = true;
        onStalled(new DatabaseStalledError(`the database stopped answering: no reply to a ping within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      deadline.unref();
      connection.query('SELECT 1').then(
        () => {
          answered = true;
          clearTimeout(deadline);
          if (!stopped) beat();
        },
        () => {
          answered = true;
          clearTimeout(deadline);
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
 * Fails every statement waiting on `connection` with `error`, now. mysql2's destroy() only ends
 * the socket politely and then ignores its close, so a statement in flight on a server that does
 * not answer would wait forever; destroying the socket with an error makes mysql2 fail each
 * command queued on it with that error, and the pool drops the connection.
 */
export function dropConnection(connection: PoolConnection, error: Error): void {
  const core: unknown = Reflect.get(connection, 'connection');
  const socket: unknown = typeof core === 'object' && core !== null ? Reflect.get(core, 'stream') : undefined;
  if (socket instanceof Socket) socket.destroy(error);
  else connection.destroy();
}
