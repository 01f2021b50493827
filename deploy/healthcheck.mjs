#!/usr/bin/env node
// The container's health probe: GET <path> (default /health) on this member's client port, exit
// 0 on a 200 answer and 1 otherwise, within FLOTILLA_PROBE_TIMEOUT_MS (default 2500). With
// FLOTILLA_TLS_DIR (as the entrypoint's) it speaks https and presents server.pem, which serves
// as a client certificate too (clientAuth usage), so probes pass --client-cert-auth.
// Used by the image's HEALTHCHECK (/health) and the Kubernetes probes (/livez, /readyz).
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

const path = process.argv[2] ?? '/health';
const port = Number(process.env.FLOTILLA_CLIENT_PORT ?? 2379);
const timeout = Number(process.env.FLOTILLA_PROBE_TIMEOUT_MS ?? 2500);
const tlsDir = process.env.FLOTILLA_TLS_DIR;
const options = { host: '127.0.0.1', port, path, method: 'GET', timeout };
const req = tlsDir
  ? httpsRequest({
      ...options,
      ca: readFileSync(`${tlsDir}/ca.pem`),
      cert: readFileSync(`${tlsDir}/server.pem`),
      key: readFileSync(`${tlsDir}/server-key.pem`),
      // The certificate names the pod's DNS name, not 127.0.0.1: check the chain, not the name.
      checkServerIdentity: () => undefined,
    })
  : httpRequest(options);
req.on('response', (res) => {
  let body = '';
  res.on('data', (d) => (body += d));
  res.on('end', () => {
    if (res.statusCode !== 200) console.error(`${path}: ${res.statusCode} ${body.trim()}`);
    process.exit(res.statusCode === 200 ? 0 : 1);
  });
});
req.on('timeout', () => req.destroy(new Error(`no answer within ${timeout} ms`)));
req.on('error', (e) => {
  console.error(`${path}: ${e.message}`);
  process.exit(1);
});
req.end();
