// A TCP proxy in front of MariaDB that can stop answering without closing anything: what a
// paused server or a network dropping packets looks like to the client.
import net from 'node:net';

export interface StallingProxy {
  /** `url` with its host and port replaced by the proxy's. */
  through(url: string): string;
  /** From now on, nothing the server sends reaches the clients (connections stay open). */
  stall(): void;
  /** Lets the server's replies through again. */
  resume(): void;
  close(): Promise<void>;
}

export async function startStallingProxy(target: { host: string; port: number }): Promise<StallingProxy> {
  let stalled = false;
  const upstreams = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    upstreams.add(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    if (stalled) upstream.pause(); // after pipe(), which resumes its source
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      upstreams.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    through: (url) => url.replace(/@[^/]+\//, `@127.0.0.1:${address.port}/`),
    stall: () => {
      stalled = true;
      for (const upstream of upstreams) upstream.pause();
    },
    resume: () => {
      stalled = false;
      for (const upstream of upstreams) upstream.resume();
    },
    close: async () => {
      for (const upstream of upstreams) upstream.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
