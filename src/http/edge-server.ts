// The HTTP server in front of Fastify. Node answers several odd requests with an empty response,
// or not at all, and shutdown would wait on connections that have nothing to answer: this server
// answers those requests as problem+json and knows its sockets.
import http from 'node:http';
import type { Socket } from 'node:net';
import { answerRefusedHead, headRefusal, watchUnreadBody } from '../plugins/errors.js';

export interface EdgeServerOptions {
  /** Fastify's handler, wrapped by the load-shedding gate. */
  handler: http.RequestListener;
  maxHeaderBytes: number;
  requestTimeoutMs: number;
  /** How often Node checks the request timeout (its default, 30 s, would make the 408 late). */
  requestTimeoutCheckMs: number;
  keepAliveTimeoutMs: number;
  socketTimeoutMs: number;
  /** Called with the status of each request refused here, before Fastify. */
  onRefused: (status: number) => void;
}

export interface EdgeServer {
  server: http.Server;
  /**
   * Closes the connections that have nothing to answer: no request yet (a preconnect, a TCP
   * check, a head still arriving) or a request whose answer has not started and whose body has
   * not all arrived. Called once the app closes, after the drain delay: Node's own request
   * timeout no longer runs then, and such a connection would hold the shutdown to its deadline.
   */
  dropConnectionsWithNothingToAnswer(): void;
}

export function createEdgeServer(options: EdgeServerOptions): EdgeServer {
  const { handler, onRefused } = options;
  const sockets = new Set<Socket>();
  const serve = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    const refusal = headRefusal(request);
    if (refusal !== undefined) {
      onRefused(answerRefusedHead(request, response, refusal));
      return;
    }
    if (request.headers['content-length'] !== undefined || request.headers['transfer-encoding'] !== undefined) {
      watchUnreadBody(request, response);
    }
    handler(request, response);
  };
  const server = http.createServer(
    {
      // Stated rather than inherited from Node's default: larger request heads get 431.
      maxHeaderSize: options.maxHeaderBytes,
      // A request not received in time gets a 408 (clientErrorHandler): Node checks at this
      // interval, and the socket's idle timeout comes later, or it would close the connection
      // without a word first.
      requestTimeout: options.requestTimeoutMs,
      headersTimeout: options.requestTimeoutMs,
      connectionsCheckingInterval: options.requestTimeoutCheckMs,
      // Node's own answer to a missing Host is an empty 400: answered by headRefusal instead.
      requireHostHeader: false,
    },
    serve,
  );
  server.keepAliveTimeout = options.keepAliveTimeoutMs;
  server.setTimeout(options.socketTimeoutMs);
  let closing = false;
  server.on('connection', (socket: Socket) => {
    // Accepted in the moment between the app closing and the listener closing: nothing to serve.
    if (closing) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  // Node's own answer to an Expect it does not know is an empty 417.
  server.on('checkExpectation', (request: http.IncomingMessage, response: http.ServerResponse) => {
    onRefused(answerRefusedHead(request, response, 'unmetExpectation'));
  });
  // Node hands a CONNECT (a proxy's tunnel request) over as a bare socket, and closes it without
  // a word when nobody listens. This is no proxy: the request is routed like any other method the
  // path does not serve (a 405 with Allow, or a 404), then the connection closes.
  server.on('connect', (request: http.IncomingMessage, socket: Socket) => {
    // Node took its own error and timeout listeners off this socket before handing it over:
    // without these, a client resetting the connection mid-answer would crash the process.
    socket.on('error', () => socket.destroy());
    socket.setTimeout(options.requestTimeoutMs, () => socket.destroy());
    // Whatever the client sends after the head is not read by anyone: drop it, or unread bytes at
    // close would make the kernel reset the connection before the client reads the answer.
    socket.resume();
    const pending: unknown = Reflect.get(socket, '_httpMessage');
    if (pending instanceof http.ServerResponse) {
      // Pipelined behind a request still being answered: that answer owns the connection. It is
      // finished, then the connection closes; the CONNECT gets no answer (a second response
      // assigned to the socket would throw).
      if (pending.writableFinished) socket.destroySoon();
      else pending.once('finish', () => socket.destroySoon());
      return;
    }
    const response = new http.ServerResponse(request);
    response.shouldKeepAlive = false;
    response.assignSocket(socket);
    response.once('finish', () => socket.destroySoon());
    serve(request, response);
  });
  return {
    server,
    dropConnectionsWithNothingToAnswer() {
      closing = true;
      for (const socket of sockets) {
        const pending: unknown = Reflect.get(socket, '_httpMessage');
        const awaited = pending instanceof http.ServerResponse && (pending.headersSent || pending.req.complete);
        if (!awaited) socket.destroy();
      }
    },
  };
}
