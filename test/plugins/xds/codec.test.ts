import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { XdsResource } from '../../../src/core/types.js';
import { XdsCodec, XdsEncodeError } from '../../../src/plugins/xds/codec.js';
import { buildResources, TypeUrl } from '../../../src/plugins/xds/resources.js';
import { goldenCases } from './golden-cases.js';

/** Drop keys holding empty arrays (protobuf cannot tell an empty repeated field from an absent one). */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (Array.isArray(x) && x.length === 0) continue;
      out[k] = canonical(x);
    }
    return out;
  }
  return v;
}

describe('xds codec: golden resources are valid Envoy v3 protobuf', () => {
  let codec: XdsCodec;
  before(() => {
    codec = new XdsCodec();
  });

  for (const c of goldenCases()) {
    test(`${c.name}: every resource passes verify() and round-trips`, () => {
      const built = buildResources(c.snapshot);
      const all = [...built.listeners, ...built.clusters, ...built.endpoints, ...built.routes];
      assert.ok(all.length > 0);
      for (const r of all) {
        const type = codec.type(r['@type']);
        const fields = XdsCodec.fields(r);
        assert.equal(type.verify(type.fromObject(fields)), null, `${r.name} verifies`);
        const any = codec.encode(r);
        assert.equal(any.type_url, r['@type']);
        assert.ok(any.value.length > 0);
        const back = codec.decode(any);
        assert.deepStrictEqual(canonical(back), canonical({ '@type': r['@type'], ...fields }), `${r.name} round-trips`);
      }
    });
  }

  test('a load assignment is encoded without its interface-only name', () => {
    const cla: XdsResource = { '@type': TypeUrl.ClusterLoadAssignment, name: 'c', cluster_name: 'c', endpoints: [] };
    const back = codec.decode(codec.encode(cla));
    assert.deepStrictEqual(back, { '@type': TypeUrl.ClusterLoadAssignment, cluster_name: 'c' });
  });

  const bad: [string, XdsResource, RegExp][] = [
    ['misspelt field', { '@type': TypeUrl.Cluster, name: 'c', conect_timeout: { seconds: 5 } }, /conect_timeout: no such field in envoy\.config\.cluster\.v3\.Cluster/],
    ['unknown enum name', { '@type': TypeUrl.Cluster, name: 'c', type: 'EDSS' }, /type: unknown .*DiscoveryType value "EDSS"/],
    ['wrong scalar type', { '@type': TypeUrl.Listener, name: 'l', address: { socket_address: { address: '1.2.3.4', port_value: '80x' } } }, /port_value: integer expected/],
    [
      'nested Any of an unknown type',
      { '@type': TypeUrl.Listener, name: 'l', listener_filters: [{ name: 'x', typed_config: { '@type': 'type.googleapis.com/nope.Nope' } }] },
      /listener_filters\[0\]\.typed_config: unknown type/,
    ],
    [
      'misspelt field inside a nested Any',
      { '@type': TypeUrl.Listener, name: 'l', filter_chains: [{ filters: [{ name: 't', typed_config: { '@type': TypeUrl.TcpProxy, stat_prefx: 'x' } }] }] },
      /filter_chains\[0\]\.filters\[0\]\.typed_config\.stat_prefx: no such field/,
    ],
    ['repeated field given a scalar', { '@type': TypeUrl.Listener, name: 'l', filter_chains: {} }, /filter_chains: array expected/],
    ['unknown resource type', { '@type': 'type.googleapis.com/envoy.config.nope.v3.Nope', name: 'n' }, /unknown message type/],
    ['type URL without the prefix', { '@type': 'envoy.config.cluster.v3.Cluster', name: 'n' }, /must be a type URL/],
  ];
  for (const [what, resource, re] of bad) {
    test(`refuses a resource with a ${what}`, () => {
      assert.throws(
        () => codec.encode(resource),
        (err: unknown) => err instanceof XdsEncodeError && re.test(err.message),
      );
    });
  }
});
