// The one list of inbound ports a host opens, shared by both providers' firewalls.
import type { Role } from "../../src/config/schema";

export const ANYWHERE = ["0.0.0.0/0", "::/0"] as const;

/** SSH, HTTP, HTTPS; and Matrix federation where Synapse runs. Nothing else is reachable. */
export function inboundTcpPorts(roles: readonly Role[]): number[] {
  const ports = [22, 80, 443];
  if (roles.includes("matrix")) ports.push(8448);
  return ports;
}
