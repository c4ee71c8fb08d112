/** Test helpers for meshfed and third-party plugin authors. */
export { FakeClock, systemClock, type Clock } from './fake-clock.js';
export { duplexPair, MemoryNetwork, type DuplexPairOptions, type MemoryAcceptor } from './memory-duplex.js';
export { createMemoryLogger, type MemoryLogger } from './memory-logger.js';
export { waitFor } from './wait.js';
export { MemoryGossipNetwork, MemoryTransport, memoryStreamPair, type MemoryTransportOptions, type MemoryPacket } from './memory-transport.js';
export { runTransportCompliance, type TransportPair, type TransportPairFactory } from './transport-compliance.js';
export { prng } from './prng.js';
export { ETCD_BIN, EtcdCluster, freePort, TcpProxy, type EtcdClusterOptions } from './etcd-cluster.js';
