/**
 * `mesh-gateway` plugin building blocks: the TLS-passthrough SNI proxy that forwards federation
 * traffic between datacenters (spec §9), its xDS routing table and its ADS client.
 */
export * from './ads-client.js';
export * from './client-hello.js';
export * from './proxy.js';
export * from './routing.js';
export * from './gateway.js';
export * from './plugin.js';
