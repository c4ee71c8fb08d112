/**
 * The in-memory state store: catalog and federation-state tables with Raft-style indexes, written
 * only through typed FSM commands ({@link StateStore.apply}), read through typed queries that
 * report the index to block on, with fine-grained watches for blocking queries.
 */
import { systemClock, type Clock } from '../../../core/clock.js';
import { MeshfedError } from '../../../core/errors.js';
import { blockingQuery, DEFAULT_QUERY_TIME_MS, MAX_QUERY_TIME_MS, type BlockingLimits, type BlockingQueryOptions, type BlockingSource } from './blocking.js';
import { StateErrorCode, StateValidationError } from './errors.js';
import { checkKey, createTables, lower, serviceKey, type Table, type Tables } from './tables.js';
import {
  MessageType,
  TABLE_NAMES,
  type CheckServiceNode,
  type Command,
  type DeregisterRequest,
  type FederationState,
  type FederationStateRequest,
  type HealthCheck,
  type NodeRecord,
  type NodeService,
  type QueryResult,
  type RegisterRequest,
  type ServiceEntry,
  type ServiceNode,
  type StoreSnapshot,
  type TableName,
  type TableSnapshot,
} from './types.js';
import {
  address,
  deepFreeze,
  healthStatus,
  meta,
  nodeTaggedAddresses,
  optionalAddress,
  optionalString,
  port,
  requiredString,
  serviceKind,
  serviceTaggedAddresses,
  tags,
} from './validate.js';
import { WatchRegistry, type WatchSet } from './watch.js';

/** Go's zero time, the `UpdatedAt` of a federation state written without one. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

/** Options of a {@link StateStore}. */
export interface StateStoreOptions {
  /** Timer source for blocking queries (default: the system clock). */
  readonly clock?: Clock;
  /** Random in [0, 1) for blocking-query jitter (default `Math.random`). */
  readonly random?: () => number;
  /** Default blocking-query wait, ms (default 300 000). */
  readonly defaultQueryTimeMs?: number;
  /** Cap on the blocking-query wait, ms (default 600 000). */
  readonly maxQueryTimeMs?: number;
}

/** Options of {@link StateStore.checkServiceNodes}. */
export interface CheckServiceNodesOptions {
  /** Drop instances with any check not `passing`. */
  readonly passingOnly?: boolean;
}

/** One pending row change of a command. `row === undefined` deletes. */
interface Write {
  readonly table: TableName;
  readonly key: string;
  readonly row: unknown;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Add the watch keys a row of `table` touches to `out`. */
function addWatchKeys(out: Set<string>, table: TableName, row: unknown): void {
  switch (table) {
    case 'nodes':
      out.add(`nodes/${lower((row as NodeRecord).Node)}`);
      return;
    case 'services': {
      const s = row as ServiceEntry;
      out.add(`services/name:${lower(s.Service.Service)}`);
      out.add(`services/kind:${s.Service.Kind}`);
      out.add(`services/node:${lower(s.Node)}`);
      return;
    }
    case 'checks':
      out.add(`checks/node:${lower((row as HealthCheck).Node)}`);
      return;
    case 'federation-states':
      out.add(`federation-states/${lower((row as FederationState).Datacenter)}`);
      return;
  }
}

/** The in-memory, backend-agnostic state store. */
export class StateStore {
  #tables: Tables = createTables();
  readonly #watches = new WatchRegistry();
  readonly #limits: BlockingLimits;
  #lastApplied = 0;
  #generation = 0;

  /** An empty store; `options` set the clock, jitter source and blocking-query limits. */
  constructor(options: StateStoreOptions = {}) {
    this.#limits = {
      clock: options.clock ?? systemClock,
      random: options.random ?? Math.random,
      defaultQueryTimeMs: options.defaultQueryTimeMs ?? DEFAULT_QUERY_TIME_MS,
      maxQueryTimeMs: options.maxQueryTimeMs ?? MAX_QUERY_TIME_MS,
    };
  }

  // ---- indexes -------------------------------------------------------------------------------

  /** Max index of any write to table `name` (0 when never written). */
  tableIndex(name: TableName): number {
    return this.#table(name).index;
  }

  /** Latest index of the store: the highest table index or applied command index. */
  latestIndex(): number {
    let latest = this.#lastApplied;
    for (const n of TABLE_NAMES) latest = Math.max(latest, this.#table(n).index);
    return latest;
  }

  /** Number of blocking-query waiters currently registered (leak checks, metrics). */
  get watcherCount(): number {
    return this.#watches.waiters;
  }

  #table(name: TableName): Table<unknown> {
    return this.#tables[name] as Table<unknown>;
  }

  // ---- writes --------------------------------------------------------------------------------

  /**
   * Apply one FSM command at raft index `index`: validate it fully, then write every change
   * atomically and wake the watchers of exactly the keys it changed.
   * @returns `true` for a federation-state upsert (Consul's FSM result), otherwise `undefined`
   * @throws {StateValidationError} bad input (nothing written); {@link MeshfedError} with
   *   `MESHFED_ERR_STATE_UNKNOWN_COMMAND` / `MESHFED_ERR_STATE_BAD_INDEX`
   */
  apply(index: number, command: Command): boolean | undefined {
    const { writes, result } = this.#plan(index, command);
    this.#commit(index, writes);
    return result;
  }

  /**
   * Validate `command` against the current state exactly as {@link apply} would, writing
   * nothing. Backends that must agree on a command before it becomes durable (etcd) call this
   * first, so invalid input is refused without consuming an index.
   * @throws {StateValidationError} / {MeshfedError} as {@link apply}
   */
  check(command: Command): void {
    this.#plan(Math.max(1, this.#lastApplied + 1), command);
  }

  #plan(index: number, command: Command): { writes: Write[]; result: boolean | undefined } {
    if (!Number.isSafeInteger(index) || index < 1) {
      throw new MeshfedError(StateErrorCode.BAD_INDEX, `bad raft index ${String(index)}: expected a positive integer`, { plugin: 'state' });
    }
    if (index < this.#lastApplied) {
      throw new MeshfedError(StateErrorCode.BAD_INDEX, `raft index ${index} is below the last applied index ${this.#lastApplied}: indexes must not go back`, { plugin: 'state' });
    }
    if (!isRecord(command) || !isRecord(command.Body)) throw new StateValidationError('Body', 'missing command body');
    let writes: Write[];
    let result: boolean | undefined;
    const type = (command as { Type: unknown }).Type;
    switch (type) {
      case MessageType.Register:
        writes = this.#register(index, command.Body as RegisterRequest);
        break;
      case MessageType.Deregister:
        writes = this.#deregister(command.Body as DeregisterRequest);
        break;
      case MessageType.FederationState: {
        const body = command.Body as FederationStateRequest;
        writes = this.#federationState(index, body);
        result = body.Op === 'upsert' ? true : undefined;
        break;
      }
      default:
        throw new MeshfedError(StateErrorCode.UNKNOWN_COMMAND, `unknown message type ${String(type)}: expected 0 (register), 1 (deregister) or 30 (federation state)`, { plugin: 'state' });
    }
    return { writes, result };
  }

  // Rows in `writes` are already frozen by the planners. Watch keys are only computed when some
  // blocking query is waiting: a waiter registered later reads the new state first anyway.
  #commit(index: number, writes: readonly Write[]): void {
    const fired = this.#watches.idle ? undefined : new Set<string>();
    for (const w of writes) {
      const table = this.#table(w.table);
      const old = w.row === undefined ? table.delete(w.key) : table.put(w.row, w.key);
      if (w.row === undefined && old === undefined) continue;
      table.bump(index);
      if (fired === undefined) continue;
      fired.add(w.table);
      if (old !== undefined) addWatchKeys(fired, w.table, old);
      if (w.row !== undefined) addWatchKeys(fired, w.table, w.row);
    }
    if (index > this.#lastApplied) this.#lastApplied = index;
    if (fired !== undefined) this.#watches.fire(fired);
  }

  // Field-wise comparisons against the stored row: the validators return the stored nested
  // object itself when its data is unchanged, so an unchanged registration allocates no row and
  // compares by identity. Rows are built here and frozen (their nested parts are frozen by the
  // validators), so #commit need not walk them.
  #register(idx: number, req: RegisterRequest): Write[] {
    const nodeName = requiredString(req.Node, 'Node', 'node name');
    const ln = lower(nodeName);
    const writes: Write[] = [];
    const existingNode = this.#tables.nodes.get(ln);
    const nodeID = optionalString(req.ID, 'ID');
    const nodeAddress = address(req.Address, 'Address', existingNode?.Address);
    const dc = optionalString(req.Datacenter, 'Datacenter');
    const nodeTagged = nodeTaggedAddresses(req.TaggedAddresses, 'TaggedAddresses', existingNode?.TaggedAddresses);
    const nodeMeta = meta(req.NodeMeta, 'NodeMeta', existingNode?.Meta);
    const nodeSame =
      existingNode !== undefined &&
      (req.SkipNodeUpdate === true ||
        (existingNode.ID === nodeID &&
          existingNode.Node === nodeName &&
          existingNode.Address === nodeAddress &&
          existingNode.Datacenter === dc &&
          existingNode.TaggedAddresses === nodeTagged &&
          existingNode.Meta === nodeMeta));
    if (!nodeSame) {
      const row: NodeRecord = Object.freeze({
        ID: nodeID,
        Node: nodeName,
        Address: nodeAddress,
        Datacenter: dc,
        TaggedAddresses: nodeTagged,
        Meta: nodeMeta,
        CreateIndex: existingNode?.CreateIndex ?? idx,
        ModifyIndex: idx,
      });
      writes.push({ table: 'nodes', key: ln, row });
    }

    let serviceID = '';
    let serviceName = '';
    if (req.Service !== undefined && req.Service !== null) {
      const s: unknown = req.Service;
      if (!isRecord(s)) throw new StateValidationError('Service', 'expected an object');
      const name = requiredString(s.Service, 'Service.Service', 'service name');
      const kind = serviceKind(s.Kind, 'Service.Kind');
      const svcPort = port(s.Port, 'Service.Port');
      if (kind === 'mesh-gateway' && svcPort === 0) throw new StateValidationError('Service.Port', 'a mesh gateway needs a non-zero port');
      const id = optionalString(s.ID, 'Service.ID') || name;
      const key = `${ln}/${lower(id)}`;
      const existing = this.#tables.services.get(key)?.Service;
      const svcTags = tags(s.Tags, 'Service.Tags', existing?.Tags);
      const svcAddress = optionalAddress(s.Address, 'Service.Address', existing?.Address);
      const svcTagged = serviceTaggedAddresses(s.TaggedAddresses, 'Service.TaggedAddresses', existing?.TaggedAddresses);
      const svcMeta = meta(s.Meta, 'Service.Meta', existing?.Meta);
      serviceID = id;
      serviceName = name;
      const same =
        existing !== undefined &&
        existing.ID === id &&
        existing.Service === name &&
        existing.Kind === kind &&
        existing.Tags === svcTags &&
        existing.Address === svcAddress &&
        existing.TaggedAddresses === svcTagged &&
        existing.Port === svcPort &&
        existing.Meta === svcMeta;
      if (!same) {
        const service: NodeService = Object.freeze({
          ID: id,
          Service: name,
          Kind: kind,
          Tags: svcTags,
          Address: svcAddress,
          TaggedAddresses: svcTagged,
          Port: svcPort,
          Meta: svcMeta,
          CreateIndex: existing?.CreateIndex ?? idx,
          ModifyIndex: idx,
        });
        const row: ServiceEntry = Object.freeze({ Node: nodeName, Service: service });
        writes.push({ table: 'services', key, row });
      }
    }

    const list: unknown = req.Checks ?? undefined;
    if (list !== undefined && !Array.isArray(list)) throw new StateValidationError('Checks', 'expected an array of checks');
    // field names (`Checks[i].Status`) are only built for an error: #check names its fields
    // relative to the check, and a rejection is re-thrown here with the check's own name
    let i = -1;
    try {
      if (req.Check !== undefined && req.Check !== null) this.#check(idx, req.Check, nodeName, ln, serviceID, serviceName, writes);
      if (list !== undefined) for (i = 0; i < list.length; i++) this.#check(idx, list[i], nodeName, ln, serviceID, serviceName, writes);
    } catch (err) {
      if (!(err instanceof StateValidationError)) throw err;
      const field = i < 0 ? 'Check' : `Checks[${i}]`;
      throw new StateValidationError(err.field === '' ? field : `${field}.${err.field}`, err.reason);
    }
    return writes;
  }

  /**
   * Validate one check of a registration; push its row when it changed. Fields of its
   * {@link StateValidationError}s are relative to the check (`''`: the check itself).
   */
  #check(idx: number, c: unknown, nodeName: string, ln: string, regServiceID: string, regServiceName: string, writes: Write[]): void {
    if (!isRecord(c)) throw new StateValidationError('', 'expected an object');
    const checkNode = optionalString(c.Node, 'Node') || nodeName;
    if (checkNode !== nodeName && lower(checkNode) !== ln) throw new StateValidationError('Node', `check node ${JSON.stringify(checkNode)} does not match registration node ${JSON.stringify(nodeName)}`);
    const name = optionalString(c.Name, 'Name');
    const checkID = optionalString(c.CheckID, 'CheckID') || name;
    if (checkID === '') throw new StateValidationError('CheckID', 'missing check ID (set CheckID or Name)');
    const status = healthStatus(c.Status, 'Status');
    const serviceID = optionalString(c.ServiceID, 'ServiceID');
    let serviceName = '';
    if (serviceID !== '') {
      if (regServiceID !== '' && (regServiceID === serviceID || lower(regServiceID) === lower(serviceID))) serviceName = regServiceName;
      else {
        const s = this.#tables.services.get(`${ln}/${lower(serviceID)}`);
        if (!s) throw new StateValidationError('ServiceID', `missing service registration ${JSON.stringify(serviceID)} on node ${JSON.stringify(nodeName)}`);
        serviceName = s.Service.Service;
      }
    }
    const notes = optionalString(c.Notes, 'Notes');
    const output = optionalString(c.Output, 'Output');
    const key = `${ln}/${lower(checkID)}`;
    const existing = this.#tables.checks.get(key);
    if (
      existing !== undefined &&
      existing.Node === nodeName &&
      existing.CheckID === checkID &&
      existing.Name === name &&
      existing.Status === status &&
      existing.Notes === notes &&
      existing.Output === output &&
      existing.ServiceID === serviceID &&
      existing.ServiceName === serviceName
    ) {
      return;
    }
    const row: HealthCheck = Object.freeze({
      Node: nodeName,
      CheckID: checkID,
      Name: name,
      Status: status,
      Notes: notes,
      Output: output,
      ServiceID: serviceID,
      ServiceName: serviceName,
      CreateIndex: existing?.CreateIndex ?? idx,
      ModifyIndex: idx,
    });
    writes.push({ table: 'checks', key, row });
  }

  #deregister(req: DeregisterRequest): Write[] {
    const nodeName = requiredString(req.Node, 'Node', 'node name');
    const serviceID = optionalString(req.ServiceID, 'ServiceID');
    const checkID = optionalString(req.CheckID, 'CheckID');
    const t = this.#tables;
    const del = (table: TableName, key: string): Write => ({ table, key, row: undefined });
    if (serviceID !== '') {
      const key = serviceKey(nodeName, serviceID);
      if (!t.services.get(key)) return [];
      return [del('services', key), ...t.checks.by('service', key).map((c) => del('checks', t.checks.keyOf(c)))];
    }
    if (checkID !== '') return [del('checks', checkKey(nodeName, checkID))];
    const ln = lower(nodeName);
    if (!t.nodes.get(ln)) return [];
    return [
      ...t.checks.by('node', ln).map((c) => del('checks', t.checks.keyOf(c))),
      ...t.services.by('node', ln).map((s) => del('services', t.services.keyOf(s))),
      del('nodes', ln),
    ];
  }

  #federationState(idx: number, req: FederationStateRequest): Write[] {
    const st: unknown = req.State;
    if (!isRecord(st)) throw new StateValidationError('State', 'missing federation state');
    const dc = requiredString(st.Datacenter, 'State.Datacenter', 'datacenter on federation state');
    const key = lower(dc);
    const existing = this.#tables['federation-states'].get(key);
    switch (req.Op) {
      case 'upsert': {
        const gws: unknown = st.MeshGateways ?? [];
        if (!Array.isArray(gws)) throw new StateValidationError('State.MeshGateways', 'expected an array of CheckServiceNode');
        gws.forEach((g, i) => {
          if (!isRecord(g) || !isRecord(g.Node) || !isRecord(g.Service)) throw new StateValidationError(`State.MeshGateways[${i}]`, 'expected {Node, Service, Checks}');
        });
        const pmi: unknown = st.PrimaryModifyIndex ?? 0;
        if (typeof pmi !== 'number' || !Number.isSafeInteger(pmi) || pmi < 0) throw new StateValidationError('State.PrimaryModifyIndex', 'expected a non-negative integer');
        const row: FederationState = {
          Datacenter: dc,
          MeshGateways: deepFreeze(structuredClone(gws) as CheckServiceNode[]),
          UpdatedAt: optionalString(st.UpdatedAt, 'State.UpdatedAt') || ZERO_TIME,
          PrimaryModifyIndex: pmi === 0 ? idx : pmi,
          CreateIndex: existing?.CreateIndex ?? idx,
          ModifyIndex: idx,
        };
        return [{ table: 'federation-states', key, row: Object.freeze(row) }];
      }
      case 'delete':
        return existing ? [{ table: 'federation-states', key, row: undefined }] : [];
      default:
        throw new MeshfedError(StateErrorCode.UNKNOWN_COMMAND, `invalid federation state operation type: ${String(req.Op)}`, { plugin: 'state' });
    }
  }

  // ---- reads ---------------------------------------------------------------------------------

  #result<T>(value: T, ...tables: TableName[]): QueryResult<T> {
    return { index: Math.max(1, ...tables.map((n) => this.#table(n).index)), value };
  }

  /** Node `name` (case-insensitive), or `undefined`. Not a query: no index, no watch (ACL checks of writes). */
  node(name: string): NodeRecord | undefined {
    return this.#tables.nodes.get(lower(name));
  }

  /** Service instance `serviceID` of node `node` (both case-insensitive), or `undefined`. Not a query. */
  nodeService(node: string, serviceID: string): NodeService | undefined {
    return this.#tables.services.get(serviceKey(node, serviceID))?.Service;
  }

  /** Check `checkID` of node `node` (both case-insensitive), or `undefined`. Not a query. */
  nodeCheck(node: string, checkID: string): HealthCheck | undefined {
    return this.#tables.checks.get(checkKey(node, checkID));
  }

  /** Every node, by name. */
  nodes(ws?: WatchSet): QueryResult<NodeRecord[]> {
    ws?.add('nodes');
    return this.#result(this.#tables.nodes.all(), 'nodes');
  }

  /** Every service name with the union of its instances' tags (sorted). */
  services(ws?: WatchSet): QueryResult<Record<string, string[]>> {
    ws?.add('services');
    const out = new Map<string, Set<string>>();
    const names = new Map<string, string>();
    for (const { Service: s } of this.#tables.services.all()) {
      const ln = lower(s.Service);
      if (!names.has(ln)) names.set(ln, s.Service);
      let set = out.get(ln);
      if (!set) out.set(ln, (set = new Set()));
      for (const t of s.Tags) set.add(t);
    }
    const value: Record<string, string[]> = {};
    for (const ln of [...out.keys()].sort()) value[names.get(ln) as string] = [...(out.get(ln) as Set<string>)].sort();
    return this.#result(value, 'services');
  }

  #instances(rows: readonly ServiceEntry[], ws: WatchSet | undefined, withChecks: boolean): { node: NodeRecord; svc: NodeService; checks: HealthCheck[] }[] {
    const out: { node: NodeRecord; svc: NodeService; checks: HealthCheck[] }[] = [];
    for (const row of rows) {
      const ln = lower(row.Node);
      ws?.add(`nodes/${ln}`);
      const node = this.#tables.nodes.get(ln);
      if (!node) continue;
      let checks: HealthCheck[] = [];
      if (withChecks) {
        ws?.add(`checks/node:${ln}`);
        const sid = lower(row.Service.ID);
        checks = this.#tables.checks.by('node', ln).filter((c) => c.ServiceID === '' || lower(c.ServiceID) === sid);
      }
      out.push({ node, svc: row.Service, checks });
    }
    return out;
  }

  /** Instances of service `name` (case-insensitive) in Consul's flat `ServiceNode` shape. */
  serviceNodes(name: string, ws?: WatchSet): QueryResult<ServiceNode[]> {
    ws?.add(`services/name:${lower(name)}`);
    const value = this.#instances(this.#tables.services.by('name', lower(name)), ws, false).map(({ node, svc }) => ({
      ID: node.ID,
      Node: node.Node,
      Address: node.Address,
      Datacenter: node.Datacenter,
      TaggedAddresses: node.TaggedAddresses,
      NodeMeta: node.Meta,
      ServiceKind: svc.Kind,
      ServiceID: svc.ID,
      ServiceName: svc.Service,
      ServiceTags: svc.Tags,
      ServiceAddress: svc.Address,
      ServiceTaggedAddresses: svc.TaggedAddresses,
      ServicePort: svc.Port,
      ServiceMeta: svc.Meta,
      CreateIndex: svc.CreateIndex,
      ModifyIndex: svc.ModifyIndex,
    }));
    return this.#result(value, 'nodes', 'services');
  }

  /** Instances of service `name` with node and checks (Consul `Health.ServiceNodes`). */
  checkServiceNodes(name: string, options: CheckServiceNodesOptions = {}, ws?: WatchSet): QueryResult<CheckServiceNode[]> {
    ws?.add(`services/name:${lower(name)}`);
    let value = this.#instances(this.#tables.services.by('name', lower(name)), ws, true).map(({ node, svc, checks }) => ({ Node: node, Service: svc, Checks: checks }));
    if (options.passingOnly === true) value = value.filter((c) => c.Checks.every((h) => h.Status === 'passing'));
    return this.#result(value, 'nodes', 'services', 'checks');
  }

  /** Every instance of service kind `kind` with node and checks (Consul `Internal.ServiceDump`). */
  serviceDumpByKind(kind: NodeService['Kind'], ws?: WatchSet): QueryResult<CheckServiceNode[]> {
    ws?.add(`services/kind:${kind}`);
    const value = this.#instances(this.#tables.services.by('kind', kind), ws, true).map(({ node, svc, checks }) => ({ Node: node, Service: svc, Checks: checks }));
    return this.#result(value, 'nodes', 'services', 'checks');
  }

  /** The federation state of `datacenter` (case-insensitive); index = the table's. */
  federationStateGet(datacenter: string, ws?: WatchSet): QueryResult<FederationState | undefined> {
    ws?.add(`federation-states/${lower(datacenter)}`);
    return this.#result(this.#tables['federation-states'].get(lower(datacenter)), 'federation-states');
  }

  /** Every federation state, ordered by lowercase datacenter. */
  federationStateList(ws?: WatchSet): QueryResult<FederationState[]> {
    ws?.add('federation-states');
    return this.#result(this.#tables['federation-states'].all(), 'federation-states');
  }

  // ---- blocking ------------------------------------------------------------------------------

  /**
   * Run `read` as a blocking query: returns at once when its index is above
   * `opts.minQueryIndex`, else waits for a change to a key the read watched, the wait to end
   * (default 300 s, max 600 s, plus jitter ≤ wait/16) or a restore, and re-runs.
   * @throws {MeshfedError} `MESHFED_ERR_ABORTED` when `opts.signal` aborts
   */
  blockingQuery<T>(opts: BlockingQueryOptions, read: (ws: WatchSet) => QueryResult<T>): Promise<QueryResult<T>> {
    const generation = (): number => this.#generation;
    const src: BlockingSource = {
      watch: (ws, fn) => this.#watches.watch(ws, fn),
      get generation() {
        return generation();
      },
    };
    return blockingQuery(src, this.#limits, opts, read);
  }

  // ---- snapshot ------------------------------------------------------------------------------

  /** The whole store as plain JSON-able data (records are shared, frozen). */
  snapshot(): StoreSnapshot {
    const t = this.#tables;
    const snap = <T>(table: Table<T>): TableSnapshot<T> => ({ Index: table.index, Records: table.all() });
    return {
      Version: 1,
      LatestIndex: this.latestIndex(),
      Tables: { nodes: snap(t.nodes), services: snap(t.services), checks: snap(t.checks), 'federation-states': snap(t['federation-states']) },
    };
  }

  /**
   * Replace the whole store with `snapshot`, keeping every record's and table's index; wakes
   * every blocking query (they re-run and return).
   * @throws {MeshfedError} `MESHFED_ERR_STATE_BAD_SNAPSHOT` when malformed (store unchanged)
   */
  restore(snapshot: StoreSnapshot): void {
    const bad = (why: string): MeshfedError => new MeshfedError(StateErrorCode.BAD_SNAPSHOT, `bad snapshot: ${why}`, { plugin: 'state' });
    if (!isRecord(snapshot) || snapshot.Version !== 1 || !isRecord(snapshot.Tables)) throw bad('expected {Version: 1, LatestIndex, Tables}');
    const fresh = createTables();
    const tables = snapshot.Tables as Record<string, unknown>;
    for (const name of TABLE_NAMES) {
      const ts = tables[name];
      if (!isRecord(ts) || typeof ts.Index !== 'number' || !Array.isArray(ts.Records)) throw bad(`table ${name} needs {Index, Records[]}`);
      const rows = structuredClone(ts.Records) as unknown[];
      rows.forEach((r, i) => {
        if (!isRecord(r)) throw bad(`${name}.Records[${i}] is not an object`);
      });
      try {
        (fresh[name] as Table<unknown>).reset(rows.map((r) => deepFreeze(r)), ts.Index);
      } catch (err) {
        throw new MeshfedError(StateErrorCode.BAD_SNAPSHOT, `bad snapshot: table ${name} has malformed records`, { plugin: 'state', cause: err });
      }
    }
    this.#tables = fresh;
    this.#lastApplied = typeof snapshot.LatestIndex === 'number' ? snapshot.LatestIndex : 0;
    this.#generation++;
    this.#watches.fireAll();
  }
}
