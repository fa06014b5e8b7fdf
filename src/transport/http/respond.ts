/**
 * Answers on the hot routes, written straight to the response: the headers
 * express's res.json sets (Content-Type with charset, Content-Length), the
 * body in one write, without res.send's content negotiation and checks.
 */
import type { ServerResponse } from 'node:http';

export function sendJsonText(res: ServerResponse, json: string, status = 200): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(json));
  res.end(json);
}

export function sendJson(res: ServerResponse, value: unknown, status = 200): void {
  sendJsonText(res, JSON.stringify(value), status);
}

export function sendBytes(res: ServerResponse, body: Buffer, type = 'application/octet-stream'): void {
  res.statusCode = 200;
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Length', body.length);
  res.end(body);
}
