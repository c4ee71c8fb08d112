/**
 * `tls` plugin: the TLS configurator every federated server needs (incoming mTLS contexts that
 * follow certificate rotation, outgoing contexts, the ALPN wrapper of spec §1.5) and the
 * certificate tooling behind `meshfed tls`. In `dev` mode it makes an ephemeral in-memory CA and
 * a server certificate for this node.
 */
import type { AgentPlugin } from '../../core/plugin.js';
import { serviceToken } from '../../core/tokens.js';
import { generateCa, generateCert } from './certs.js';
import { TlsConfigurator } from './configurator.js';
import { fileTlsSource, validateTlsMaterial, type TlsMaterial, type TlsMaterialSource } from './material.js';

export * from './certs.js';
export * from './configurator.js';
export * from './errors.js';
export * from './material.js';

/** Tokens of the `tls` plugin's services. */
export const TlsTokens = Object.freeze({
  /**
   * The agent's TLS configurator. Bound only when TLS material is configured (`tls.ca_file`) or in
   * dev mode: resolve it with `services.tryGet` and treat `undefined` as "no TLS".
   */
  Configurator: serviceToken<TlsConfigurator>('tls.Configurator'),
});

/** Options of {@link tls}. */
export interface TlsPluginOptions {
  /** Development mode: generate an in-memory CA and a server certificate for this node at start. */
  readonly dev?: boolean;
  /** Take material from this source instead of `tls.*_file` (material fetched from a vault, tests). */
  readonly source?: TlsMaterialSource;
}

/** A source that creates a throwaway CA and a server certificate for this node on first load. */
function devSource(datacenter: string, domain: string, node: string): TlsMaterialSource {
  let material: Promise<TlsMaterial> | undefined;
  return {
    names: { ca: 'the dev CA', cert: 'the dev server certificate', key: 'the dev server key' },
    describe: () => `ephemeral dev CA, server certificate for ${node}.server.${datacenter}.${domain}`,
    load() {
      material ??= (async () => {
        const ca = await generateCa({ domain, days: 7 });
        const cert = await generateCert({ ca, kind: 'server', datacenter, domain, node, days: 7 });
        return { caPem: ca.certPem, certPem: cert.certPem, keyPem: cert.keyPem };
      })();
      return material;
    },
    changed: async () => false,
  };
}

/**
 * The TLS plugin.
 *
 * @example
 * ```ts
 * import { createAgent } from 'meshfed';
 * import { tls, TlsTokens } from 'meshfed/plugins/tls';
 * const agent = await createAgent({
 *   config: { tls: { ca_file: 'consul-agent-ca.pem', cert_file: 'dc1-server-consul-0.pem', key_file: 'dc1-server-consul-0-key.pem', verify_incoming: true } },
 *   plugins: [tls()],
 * });
 * await agent.start();
 * const conf = agent.services.tryGet(TlsTokens.Configurator); // undefined when TLS is not configured
 * ```
 */
export function tls(options: TlsPluginOptions = {}): AgentPlugin {
  const pickSource = (c: Parameters<NonNullable<AgentPlugin['validate']>>[0]['config']): TlsMaterialSource | undefined => {
    if (options.source) return options.source;
    if (options.dev && c.tls.ca_file === undefined) return devSource(c.datacenter, c.domain.replace(/\.$/, ''), c.node_name);
    if (c.tls.ca_file === undefined) return undefined;
    return fileTlsSource({ caFile: c.tls.ca_file, ...(c.tls.cert_file ? { certFile: c.tls.cert_file } : {}), ...(c.tls.key_file ? { keyFile: c.tls.key_file } : {}) });
  };
  return {
    name: 'tls',
    provides: ['tls-configurator'],
    async validate({ config }) {
      // Read and check the files now, so a missing file or a mismatched key fails the boot with
      // the file's name instead of failing the first handshake. (Dev material is made at start.)
      if (options.dev && config.tls.ca_file === undefined && !options.source) return;
      const source = pickSource(config);
      if (!source) return;
      validateTlsMaterial(await source.load(), source.names);
    },
    register({ container, config, logger }) {
      const source = pickSource(config);
      if (!source) return;
      container.bind(TlsTokens.Configurator).toConstantValue(
        new TlsConfigurator({
          source,
          datacenter: config.datacenter,
          domain: config.domain,
          nodeName: config.node_name,
          verifyIncoming: config.tls.verify_incoming,
          verifyOutgoing: config.tls.verify_outgoing,
          verifyServerHostname: config.tls.verify_server_hostname,
          logger,
        }),
      );
    },
    apply({ services, logger, config }) {
      const conf = services.tryGet(TlsTokens.Configurator);
      if (!conf) {
        return {
          start() {
            logger.info('TLS not configured: internal RPC runs without TLS (set tls.ca_file, tls.cert_file and tls.key_file)');
          },
          status: () => ({ tls: 'off' }),
        };
      }
      const source = pickSource(config)?.describe() ?? 'custom source';
      return {
        async start({ signal }) {
          await conf.init(signal);
          logger.info('TLS ready', { material: source, mutual: conf.mutualTlsCapable() });
        },
        status: () => ({ tls: `${conf.mutualTlsCapable() ? 'mutual TLS' : 'CA only (no certificate)'}; ${source}` }),
      };
    },
  };
}
