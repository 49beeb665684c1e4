// TLS towards the agent: certificate fingerprints ("sha256:AB:CD:..."), and channel credentials
// that pin the agent's certificate. The agent makes its own CA (like a Proxmox node); a client pins
// either that CA's fingerprint (the leaf must be signed by it) or the server certificate's own, or
// trusts a CA file. A server whose certificate does not match is refused before any call is sent.
import { X509Certificate, createHash } from "node:crypto";
import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from "node:tls";
import { checkServerIdentity as defaultServerIdentity, createSecureContext } from "node:tls";
import { ChannelCredentials, type CallCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { LullError } from "./errors.js";

const FINGERPRINT = /^(?:sha256:)?((?:[0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2})$/;

/** `sha256:AB:CD:…` (32 upper-case hex pairs); accepts the same with or without prefix or colons. */
export function normalizeFingerprint(value: string, field = "fingerprint"): string {
  const m = FINGERPRINT.exec(value.trim());
  const hex = m?.[1]?.replace(/:/g, "").toUpperCase();
  if (!hex || hex.length !== 64) {
    throw new LullError("LULL_E_CONFIG_INVALID", `${field}: expected a SHA-256 fingerprint like sha256:AB:CD:… (32 hex pairs)`);
  }
  return `sha256:${hex.match(/../g)!.join(":")}`;
}

/** The SHA-256 fingerprint of a certificate (PEM text or DER bytes), as `sha256:AB:CD:…`. */
export function certificateFingerprint(cert: string | Buffer): string {
  const der = typeof cert === "string" ? new X509Certificate(cert).raw : cert;
  const hex = createHash("sha256").update(der).digest("hex").toUpperCase();
  return `sha256:${hex.match(/../g)!.join(":")}`;
}

function inValidity(cert: X509Certificate, now: number): boolean {
  return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
}

/**
 * Why a presented chain does not match the pin, or undefined when it does: the leaf's own
 * fingerprint matches, or a CA certificate of the chain matches and signed the leaf. Dates count.
 */
export function pinMismatch(chain: PeerCertificate | DetailedPeerCertificate | undefined, pin: string, now = Date.now()): string | undefined {
  if (!chain?.raw) return "the agent presented no certificate";
  const leaf = new X509Certificate(chain.raw);
  const leafPrint = certificateFingerprint(chain.raw);
  if (!inValidity(leaf, now)) return `the agent's certificate ${leafPrint} is outside its validity period`;
  if (leafPrint === pin) return undefined;
  const seen = new Set<string>([leafPrint]);
  for (let c = (chain as Partial<DetailedPeerCertificate>).issuerCertificate; c?.raw; c = c.issuerCertificate) {
    const print = certificateFingerprint(c.raw);
    if (seen.has(print)) break;
    seen.add(print);
    if (print !== pin) continue;
    const ca = new X509Certificate(c.raw);
    if (!ca.ca) return `the certificate matching the pin is not a CA certificate`;
    if (!inValidity(ca, now)) return `the pinned CA certificate is outside its validity period`;
    if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) return `the agent's certificate was not signed by the pinned CA`;
    return undefined;
  }
  const cas = [...seen].slice(1);
  const issued = cas.length > 0 ? `, issued by CA ${cas.join(", ")}` : "";
  return `the agent's certificate (${leafPrint}${issued}) does not match the pinned fingerprint ${pin}`;
}

/** Where a client's trust in the agent comes from: a pinned fingerprint, a CA certificate, or both. */
export interface AgentTlsTrust {
  /** `sha256:…` of the agent's CA (or of its server certificate). */
  fingerprint?: string | undefined;
  /** PEM of a CA that signed the agent's certificate (the host name is then checked as well, unless pinned). */
  caPem?: string | Buffer | undefined;
}

type SecureConnector = ReturnType<ChannelCredentials["_createSecureConnector"]>;

/**
 * Pins a fingerprint on grpc-js' own TLS connector: the chain is inspected (not verified against
 * system roots, which never hold the agent's private CA) and the connection is refused unless
 * `pinMismatch` accepts it.
 */
class PinnedChannelCredentials extends ChannelCredentials {
  private readonly inner = ChannelCredentials.createFromSecureContext(createSecureContext({ minVersion: "TLSv1.2" }), {
    rejectUnauthorized: false,
  });

  constructor(private readonly pin: string) {
    super();
  }

  override _isSecure(): boolean {
    return true;
  }

  override _equals(other: ChannelCredentials): boolean {
    return other === this;
  }

  override _createSecureConnector(target: Parameters<ChannelCredentials["_createSecureConnector"]>[0], options: ChannelOptions, call?: CallCredentials): SecureConnector {
    // The pin, not the name, identifies the agent: a fixed SNI name spares Node's warning about IP
    // addresses as server names (the agent serves one certificate whatever the name).
    const inner = this.inner._createSecureConnector(target, { ...options, "grpc.ssl_target_name_override": "lull-agent" }, call);
    const pin = this.pin;
    return {
      async connect(socket) {
        const result = await inner.connect(socket);
        const why = pinMismatch((result.socket as TLSSocket).getPeerCertificate(true), pin);
        if (why !== undefined) {
          result.socket.destroy();
          throw new LullError("LULL_E_PERMISSION_DENIED", `refusing the agent's TLS certificate: ${why}`);
        }
        return result;
      },
      waitForReady: () => inner.waitForReady(),
      getCallCredentials: () => inner.getCallCredentials(),
      destroy: () => inner.destroy(),
    };
  }
}

/** Channel credentials that trust only the agent described by `trust`. */
export function agentChannelCredentials(trust: AgentTlsTrust): ChannelCredentials {
  const pin = trust.fingerprint === undefined ? undefined : normalizeFingerprint(trust.fingerprint);
  if (trust.caPem === undefined) {
    if (pin === undefined) throw new LullError("LULL_E_CONFIG_INVALID", "agent TLS: give a fingerprint or a CA certificate");
    return new PinnedChannelCredentials(pin);
  }
  const ca = typeof trust.caPem === "string" ? Buffer.from(trust.caPem) : trust.caPem;
  return ChannelCredentials.createSsl(ca, null, null, {
    checkServerIdentity: (host, cert) => {
      if (pin === undefined) return defaultServerIdentity(host, cert);
      const why = pinMismatch(cert, pin);
      return why === undefined ? undefined : new Error(`refusing the agent's TLS certificate: ${why}`);
    },
  });
}
