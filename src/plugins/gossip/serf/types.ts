/**
 * What the serf layer hands to the rest of meshfed: members with tags and statuses, and events
 * (membership, user events, queries). Nothing but the serf layer and the router reads these.
 */
import type { Member } from '../../../core/types.js';

/** Serf member status (Go `MemberStatus` as text; `none` is never delivered). */
export type SerfMemberStatus = Member['status'];

/** A serf member: the kernel's {@link Member} plus the versions `members -detailed` shows. */
export interface SerfMember extends Member {
  /** memberlist protocol min / max / current. */
  readonly protocolMin: number;
  readonly protocolMax: number;
  readonly protocolCur: number;
  /** serf (memberlist delegate) protocol min / max / current. */
  readonly delegateMin: number;
  readonly delegateMax: number;
  readonly delegateCur: number;
}

/** Membership event types (Go `EventMemberJoin` …), named as the kernel's `onMembership` names them. */
export type SerfMemberEventType = 'join' | 'leave' | 'fail' | 'update' | 'reap';

/** One membership event: the members it concerns, as they are after the change. */
export interface SerfMemberEvent {
  readonly kind: 'member';
  readonly type: SerfMemberEventType;
  readonly members: readonly SerfMember[];
}

/** A user event (`serf event NAME PAYLOAD`). */
export interface SerfUserEvent {
  readonly kind: 'user';
  readonly ltime: bigint;
  readonly name: string;
  readonly payload: Buffer;
  /** Whether the sender allowed coalescing. */
  readonly coalesce: boolean;
}

/** A query someone asked the pool; answer with {@link SerfQueryEvent.respond} before its deadline. */
export interface SerfQueryEvent {
  readonly kind: 'query';
  readonly ltime: bigint;
  readonly name: string;
  readonly payload: Buffer;
  /** The node that asked. */
  readonly sourceNode: string;
  /** When the answer is no longer wanted (ms since epoch, local clock). */
  readonly deadline: number;
  /** Send one response (at most once; rejects when late, twice, or too large). */
  respond(payload: Uint8Array): Promise<void>;
}

/** Any serf event. */
export type SerfEvent = SerfMemberEvent | SerfUserEvent | SerfQueryEvent;
