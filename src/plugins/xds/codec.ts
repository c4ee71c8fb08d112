/**
 * Protobuf encoding of xDS resources and the ADS service definition, from the Envoy v3 API
 * `.proto` files shipped in `@grpc/grpc-js-xds/deps` (envoy-api, xds, googleapis,
 * protoc-gen-validate).
 *
 * Resources are checked strictly before they are encoded: every key must be a field of the
 * message (a misspelt field is an error, not silently dropped), enum values must be known names
 * or numbers, scalars must have the right JS type, nested `Any` objects must name a loaded type in
 * `'@type'`. Then protobufjs `fromObject` → `verify` → `encode`. Loading the files takes about two
 * seconds, so a codec is made once per agent (or shared between agents: it is immutable).
 */
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import type { XdsResource } from '../../core/types.js';
import { TYPE_URL_PREFIX, TypeUrl } from './resources.js';

/** The `.proto` files loaded for resources (each pulls in its imports). */
export const RESOURCE_PROTO_FILES: readonly string[] = Object.freeze([
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/sni_cluster/v3/sni_cluster.proto',
]);

/** The ADS service file. */
export const ADS_PROTO_FILE = 'envoy/service/discovery/v3/ads.proto';

/** Full name of the ADS service. */
export const ADS_SERVICE_NAME = 'envoy.service.discovery.v3.AggregatedDiscoveryService';

/** The include directories under `@grpc/grpc-js-xds/deps`. */
export function protoIncludeDirs(): string[] {
  const require = createRequire(import.meta.url);
  const pkg = require.resolve('@grpc/grpc-js-xds/package.json');
  const deps = join(pkg, '..', 'deps');
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(deps, d));
}

/** A packed resource, as it goes into `DiscoveryResponse.resources`. */
export interface EncodedAny {
  /** Full type URL. */
  readonly type_url: string;
  /** Encoded message. */
  readonly value: Buffer;
}

/** A resource that cannot be encoded: the message says which field and why. */
export class XdsEncodeError extends Error {
  /** Name of the resource. */
  readonly resource: string;
  /** Type URL of the resource. */
  readonly typeUrl: string;
  constructor(typeUrl: string, resource: string, reason: string) {
    super(`xDS resource ${resource} (${typeUrl}) does not encode: ${reason}`);
    this.name = 'XdsEncodeError';
    this.resource = resource;
    this.typeUrl = typeUrl;
  }
}

/** Options of {@link XdsCodec.decode}. */
const TO_OBJECT: protobuf.IConversionOptions = { enums: String, longs: Number, bytes: String, json: true };

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

const INT_TYPES = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32', 'int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

/** Encodes, checks and decodes Envoy v3 resources; holds the ADS service definition. */
export class XdsCodec {
  readonly #root: protobuf.Root;
  /** The grpc-js package definition of the ADS service (proto-loader, `keepCase: true`). */
  readonly packageDefinition: protoLoader.PackageDefinition;

  /** Load the protos (synchronously, about two seconds). */
  constructor(includeDirs: readonly string[] = protoIncludeDirs()) {
    // proto-loader registers google/protobuf/descriptor.proto and friends with protobufjs on import.
    this.packageDefinition = protoLoader.loadSync(ADS_PROTO_FILE, {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: false,
      oneofs: false,
      includeDirs: [...includeDirs],
    });
    const root = new protobuf.Root();
    const dirs = [...includeDirs];
    const fallback = root.resolvePath.bind(root);
    root.resolvePath = (origin: string, target: string): string | null => {
      // google/protobuf/* are bundled with protobufjs (and proto-loader's additions).
      if (isAbsolute(target) || target.startsWith('google/protobuf/')) return target;
      for (const d of dirs) {
        const full = join(d, target);
        try {
          accessSync(full, constants.R_OK);
          return full;
        } catch {
          // next directory
        }
      }
      return fallback(origin, target);
    };
    root.loadSync([...RESOURCE_PROTO_FILES], { keepCase: true });
    root.resolveAll();
    this.#root = root;
  }

  /** The message type of a type URL (`type.googleapis.com/<full name>`). */
  type(typeUrl: string): protobuf.Type {
    const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
    const t = this.#root.lookup(name);
    if (!(t instanceof protobuf.Type)) throw new Error(`unknown message type ${typeUrl}`);
    return t;
  }

  /** The protobuf fields of `resource` (without `'@type'`, and without `name` for load assignments). */
  static fields(resource: XdsResource): Record<string, unknown> {
    const { '@type': typeUrl, ...rest } = resource;
    if (typeUrl === TypeUrl.ClusterLoadAssignment) delete (rest as Record<string, unknown>)['name'];
    return rest;
  }

  /**
   * Encode one resource as an `Any`.
   * @throws {XdsEncodeError} when it is not a valid message of its `'@type'`
   */
  encode(resource: XdsResource): EncodedAny {
    const typeUrl = resource['@type'];
    const name = typeof resource.name === 'string' ? resource.name : '?';
    if (typeof typeUrl !== 'string' || !typeUrl.startsWith(TYPE_URL_PREFIX)) throw new XdsEncodeError(String(typeUrl), name, `'@type' must be a type URL starting with ${TYPE_URL_PREFIX}`);
    let type: protobuf.Type;
    try {
      type = this.type(typeUrl);
    } catch (err) {
      throw new XdsEncodeError(typeUrl, name, (err as Error).message);
    }
    const fields = XdsCodec.fields(resource);
    const problem = this.#check(type, fields, '');
    if (problem !== undefined) throw new XdsEncodeError(typeUrl, name, problem);
    try {
      const msg = type.fromObject(fields);
      const bad = type.verify(msg);
      if (bad !== null) throw new Error(bad);
      return { type_url: typeUrl, value: Buffer.from(type.encode(msg).finish()) };
    } catch (err) {
      if (err instanceof XdsEncodeError) throw err;
      throw new XdsEncodeError(typeUrl, name, (err as Error).message);
    }
  }

  /** Decode an `Any` back into the plain-object form (snake_case, enum names, nested `'@type'`). */
  decode(any: { type_url: string; value: Uint8Array }): Record<string, unknown> {
    const type = this.type(any.type_url);
    const obj = type.toObject(type.decode(any.value), TO_OBJECT);
    return { '@type': any.type_url, ...obj };
  }

  /** Why `obj` is not a valid `type` message (path + reason), or `undefined`. */
  #check(type: protobuf.Type, obj: unknown, path: string): string | undefined {
    if (!isPlainObject(obj)) return `${path || 'resource'}: object expected`;
    for (const [key, value] of Object.entries(obj)) {
      const at = path === '' ? key : `${path}.${key}`;
      if (key === '@type' && type.fullName === '.google.protobuf.Any') continue;
      const field = type.fields[key];
      if (!field) return `${at}: no such field in ${type.fullName.slice(1)}`;
      if (value === undefined || value === null) continue;
      if (field.map) {
        if (!isPlainObject(value)) return `${at}: map (object) expected`;
        for (const [k, v] of Object.entries(value)) {
          const p = this.#checkValue(field, v, `${at}.${k}`);
          if (p) return p;
        }
      } else if (field.repeated) {
        if (!Array.isArray(value)) return `${at}: array expected`;
        for (let i = 0; i < value.length; i++) {
          const p = this.#checkValue(field, value[i], `${at}[${i}]`);
          if (p) return p;
        }
      } else {
        const p = this.#checkValue(field, value, at);
        if (p) return p;
      }
    }
    return undefined;
  }

  #checkValue(field: protobuf.Field, value: unknown, at: string): string | undefined {
    const rt = field.resolvedType;
    if (rt instanceof protobuf.Enum) {
      if (typeof value === 'string') return value in rt.values ? undefined : `${at}: unknown ${rt.fullName.slice(1)} value "${value}"`;
      if (typeof value === 'number' && Number.isInteger(value)) return undefined;
      return `${at}: enum name or number expected`;
    }
    if (rt instanceof protobuf.Type) {
      if (rt.fullName === '.google.protobuf.Any') {
        if (!isPlainObject(value)) return `${at}: object expected`;
        const inner = value['@type'];
        if (typeof inner !== 'string') {
          return value['type_url'] !== undefined ? undefined : `${at}: '@type' expected in an Any`;
        }
        let t: protobuf.Type;
        try {
          t = this.type(inner);
        } catch {
          return `${at}: unknown type ${inner}`;
        }
        const { '@type': _t, ...rest } = value;
        return this.#check(t, rest, at);
      }
      return this.#check(rt, value, at);
    }
    switch (field.type) {
      case 'string':
        return typeof value === 'string' ? undefined : `${at}: string expected`;
      case 'bool':
        return typeof value === 'boolean' ? undefined : `${at}: boolean expected`;
      case 'double':
      case 'float':
        return typeof value === 'number' ? undefined : `${at}: number expected`;
      case 'bytes':
        return value instanceof Uint8Array || typeof value === 'string' ? undefined : `${at}: bytes (Uint8Array or base64) expected`;
      default:
        if (INT_TYPES.has(field.type)) {
          const ok = (typeof value === 'number' && Number.isInteger(value)) || (typeof value === 'string' && /^-?\d+$/.test(value));
          if (!ok) return `${at}: integer expected`;
          if (field.type.startsWith('u') || field.type.startsWith('fixed')) {
            if (Number(value) < 0) return `${at}: non-negative integer expected`;
          }
          if (field.type.endsWith('32') && typeof value === 'number' && Math.abs(value) > 0xffffffff) return `${at}: 32-bit integer expected`;
          return undefined;
        }
        return undefined;
    }
  }
}
