/**
 * Members in the JSON shape of Consul's `GET /v1/agent/members` (`api.AgentMember`), shared by
 * the HTTP endpoint and `meshfed members`.
 */
import { MemberStatus } from './serf/message-type.js';
import type { SerfMember, SerfMemberStatus } from './serf/types.js';

/** One member as Consul's agent API returns it. */
export interface AgentMemberJson {
  readonly Name: string;
  readonly Addr: string;
  readonly Port: number;
  readonly Tags: Readonly<Record<string, string>>;
  /** serf MemberStatus: 0 none, 1 alive, 2 leaving, 3 left, 4 failed. */
  readonly Status: number;
  readonly ProtocolMin: number;
  readonly ProtocolMax: number;
  readonly ProtocolCur: number;
  readonly DelegateMin: number;
  readonly DelegateMax: number;
  readonly DelegateCur: number;
}

const STATUS_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(MemberStatus).map(([name, code]) => [code, name]));

/** serf's numeric MemberStatus of a status name. */
export function memberStatusCode(status: SerfMemberStatus): number {
  return MemberStatus[status];
}

/** The status name of a numeric MemberStatus (`none` for unknown numbers). */
export function memberStatusName(code: number): string {
  return STATUS_NAMES.get(code) ?? 'none';
}

/** Members sorted by name, in Consul's JSON shape. */
export function membersJson(members: readonly SerfMember[]): AgentMemberJson[] {
  return [...members]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((m) => ({
      Name: m.name,
      Addr: m.address,
      Port: m.port,
      Tags: m.tags,
      Status: memberStatusCode(m.status),
      ProtocolMin: m.protocolMin,
      ProtocolMax: m.protocolMax,
      ProtocolCur: m.protocolCur,
      DelegateMin: m.delegateMin,
      DelegateMax: m.delegateMax,
      DelegateCur: m.delegateCur,
    }));
}
