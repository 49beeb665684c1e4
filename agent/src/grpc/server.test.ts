// The server's standard services and read-only calls: health checking, reflection,
// GetAgentInfo and ListJobs, as a generic gRPC tool would see them.
import { strict as assert } from "node:assert";
import { readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { credentials, loadPackageDefinition, makeClientConstructor, type Client, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { service as healthService } from "grpc-health-check";
import protobuf from "protobufjs";
import descriptor from "protobufjs/ext/descriptor/index.js";
import { Phase, protoDir, protoFile } from "@lull/proto";
import { startTestAgent, waitForEnd, type TestAgent } from "../testing/agent-harness.js";
import { FakeEngine } from "../testing/fake-engine.js";
import { splitAddress } from "./server.js";

let t: TestAgent;
before(async () => {
  t = await startTestAgent({ engine: new FakeEngine() });
});
after(async () => {
  await t.stop();
  rmSync(t.dir, { recursive: true, force: true });
});

type Callback<T> = (err: ServiceError | null, res: T) => void;

describe("gRPC server", () => {
  it("answers the standard health check for the server and for lull.v1.Agent", async () => {
    const Health = makeClientConstructor(healthService, "grpc.health.v1.Health");
    const client = new Health(t.agent.address, credentials.createInsecure()) as unknown as Client & {
      check(req: { service: string }, cb: Callback<{ status: string }>): void;
    };
    try {
      for (const service of ["", "lull.v1.Agent"]) {
        const res = await new Promise<{ status: string }>((resolve, reject) => client.check({ service }, (e, r) => (e ? reject(e) : resolve(r))));
        assert.equal(res.status, "SERVING", `health of "${service}"`);
      }
    } finally {
      client.close();
    }
  });

  it("answers server reflection: lists lull.v1.Agent and serves its file descriptor", async () => {
    const require = createRequire(import.meta.url);
    const protoRoot = join(dirname(require.resolve("@grpc/reflection")), "../proto");
    const def = loadSync("grpc/reflection/v1/reflection.proto", { includeDirs: [protoRoot], keepCase: true });
    const pkg = loadPackageDefinition(def) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: new (addr: string, creds: unknown) => Client & { ServerReflectionInfo(): NodeJS.ReadWriteStream & { write(m: object): boolean; end(): void; cancel(): void } } } } };
    };
    const client = new pkg.grpc.reflection.v1.ServerReflection(t.agent.address, credentials.createInsecure());
    try {
      const ask = (request: object) =>
        new Promise<Record<string, unknown>>((resolve, reject) => {
          const call = client.ServerReflectionInfo();
          call.on("data", (m: Record<string, unknown>) => {
            resolve(m);
            call.end();
          });
          call.on("error", reject);
          call.write(request);
        });
      const list = (await ask({ list_services: "" })) as { list_services_response: { service: Array<{ name: string }> } };
      const names = list.list_services_response.service.map((s) => s.name);
      assert.ok(names.includes("lull.v1.Agent"), `services: ${names.join(", ")}`);
      const file = (await ask({ file_containing_symbol: "lull.v1.Agent" })) as { file_descriptor_response?: { file_descriptor_proto: Buffer[] } };
      const protos = file.file_descriptor_response?.file_descriptor_proto ?? [];
      const text = protos.map((b) => Buffer.from(b).toString("latin1")).join("");
      assert.ok(text.includes("lull.v1") && text.includes("StartBackup") && text.includes("WatchEvents"), "the descriptor of the lull.v1 API");
      assert.ok(text.includes("WatchEventBatches") && text.includes("EventBatch"), "the descriptor served is the .proto's as shipped (its newest RPC)");
    } finally {
      client.close();
    }
  });

  it("reflection as an outside client sees it: lull.v1.Agent and grpc.health.v1.Health, and lull.v1's descriptor matches agent.proto field for field", async () => {
    // The client: reflection.proto through proto-loader and a plain grpc-js client; the served
    // FileDescriptorProto bytes decoded with protobufjs' descriptor types. No generated code of the project.
    const require = createRequire(import.meta.url);
    const protoRoot = join(dirname(require.resolve("@grpc/reflection")), "../proto");
    const def = loadSync("grpc/reflection/v1/reflection.proto", { includeDirs: [protoRoot], keepCase: true });
    const pkg = loadPackageDefinition(def) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: new (addr: string, creds: unknown) => Client & { ServerReflectionInfo(): NodeJS.ReadWriteStream & { write(m: object): boolean; end(): void } } } } };
    };
    const client = new pkg.grpc.reflection.v1.ServerReflection(t.agent.address, credentials.createInsecure());
    const ask = (request: object) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const call = client.ServerReflectionInfo();
        call.on("data", (m: Record<string, unknown>) => {
          resolve(m);
          call.end();
        });
        call.on("error", reject);
        call.write(request);
      });
    try {
      const list = (await ask({ list_services: "" })) as { list_services_response: { service: Array<{ name: string }> } };
      const names = list.list_services_response.service.map((s) => s.name).sort();
      assert.ok(names.includes("lull.v1.Agent") && names.includes("grpc.health.v1.Health"), `services: ${names.join(", ")}`);

      const file = (await ask({ file_containing_symbol: "lull.v1.Agent" })) as { file_descriptor_response?: { file_descriptor_proto: Buffer[] } };
      const served = (file.file_descriptor_response?.file_descriptor_proto ?? []).map((b) => toPlain(descriptor.FileDescriptorProto.decode(b)));
      const lull = served.find((f) => f.package === "lull.v1");
      assert.ok(lull, `files served: ${served.map((f) => f.package).join(", ")}`);

      // Expected: agent.proto itself, parsed by protobufjs (not by ts-proto).
      const root = new protobuf.Root().loadSync(join(protoDir, protoFile), { keepCase: true });
      const expected = toPlain((root as unknown as { toDescriptor(syntax: string): { file: unknown[] } }).toDescriptor("proto3")).file.find((f: Plain) => f.package === "lull.v1");
      assert.deepEqual(shape(lull), shape(expected));

      // And a check that needs no protobuf library at all: every `[type] name = N;` of the file is a served field or enum value.
      const text = readFileSync(join(protoDir, protoFile), "utf8").replace(/\/\/.*$/gm, "");
      const declared = [...text.matchAll(/^\s*(?:repeated\s+|optional\s+)?(?:[\w.]+\s+)?(\w+)\s*=\s*(\d+)\s*;/gm)].map((m) => `${m[1]}=${m[2]}`);
      const servedFields = allFields(lull).map((f) => `${f.name}=${f.number}`);
      const enumValues = allEnumValues(lull).map((v) => `${v.name}=${v.number}`);
      assert.deepEqual([...declared].sort(), [...servedFields, ...enumValues].sort());
    } finally {
      client.close();
    }
  });

  it("GetAgentInfo lists the configured guests; ListJobs lists newest first and filters", async () => {
    const info = await t.api.getAgentInfo();
    assert.equal(info.node, "test-node");
    assert.match(info.version, /^\d+\.\d+\.\d+/);
    assert.ok(info.startedAt instanceof Date);
    assert.deepEqual(info.guests, [{ id: "demo", engine: "native", driver: "dir", snapshot: "copy" }]);

    const a = (await t.api.startBackup({ guestId: "demo" })).job!;
    await waitForEnd(t, "demo", a.id);
    const b = (await t.api.startBackup({ guestId: "demo" })).job!;
    await waitForEnd(t, "demo", b.id);
    const listed = await t.api.listJobs({ guestId: "demo" });
    assert.deepEqual(listed.jobs.map((j) => j.id), [b.id, a.id]);
    assert.ok(listed.jobs.every((j) => j.phase === Phase.PHASE_DONE));
    assert.deepEqual((await t.api.listJobs({ activeOnly: true })).jobs, []);
    assert.equal((await t.api.listJobs({ limit: 1 })).jobs.length, 1);
    assert.ok((await t.api.getAgentInfo()).lastEventSeq > info.lastEventSeq);
  });

  it("splits listen addresses, IPv6 included, and names the key when one is malformed", () => {
    assert.deepEqual(splitAddress("127.0.0.1:0"), { host: "127.0.0.1", port: 0 });
    assert.deepEqual(splitAddress("[::1]:7450"), { host: "[::1]", port: 7450 });
    assert.throws(() => splitAddress("localhost"), /listen\.address/);
    assert.throws(() => splitAddress("host:99999"), /listen\.address/);
  });
});

// Decoded descriptors are untyped JSON.
type Plain = Record<string, any>;

function toPlain(message: unknown): Plain {
  const type = (message as { $type?: protobuf.Type }).$type;
  const object = type ? type.toObject(message as protobuf.Message, { enums: Number, longs: Number, defaults: false, arrays: true }) : (message as Plain);
  return JSON.parse(JSON.stringify(object)) as Plain;
}

/** What a client relies on: per message its fields (name, number, label, type, type name, oneof), enums, services. */
function shape(file: Plain): Plain {
  const messages: Plain = {};
  const enums: Plain = {};
  const walk = (prefix: string, list: Plain[] = [], enumList: Plain[] = []) => {
    for (const e of enumList) enums[`${prefix}.${e.name}`] = (e.value ?? []).map((v: Plain) => [v.name, v.number ?? 0]);
    for (const m of list) {
      const name = `${prefix}.${m.name}`;
      messages[name] = {
        fields: (m.field ?? []).map((f: Plain) => [f.name, f.number, f.label ?? 1, f.type, f.typeName ?? "", f.oneofIndex ?? -1, f.proto3Optional ?? false]),
        oneofs: (m.oneofDecl ?? []).map((o: Plain) => o.name),
      };
      walk(name, m.nestedType, m.enumType);
    }
  };
  walk(file.package, file.messageType, file.enumType);
  const services = Object.fromEntries(
    (file.service ?? []).map((s: Plain) => [s.name, (s.method ?? []).map((m: Plain) => [m.name, m.inputType, m.outputType, !!m.clientStreaming, !!m.serverStreaming])]),
  );
  return { messages, enums, services };
}

function allFields(file: Plain): Plain[] {
  const out: Plain[] = [];
  const walk = (list: Plain[] = []) => {
    for (const m of list) {
      out.push(...(m.field ?? []));
      walk(m.nestedType);
    }
  };
  walk(file.messageType);
  return out;
}

function allEnumValues(file: Plain): Plain[] {
  const out: Plain[] = [];
  const walk = (list: Plain[] = [], enumList: Plain[] = []) => {
    for (const e of enumList) out.push(...(e.value ?? []).map((v: Plain) => ({ name: v.name, number: v.number ?? 0 })));
    for (const m of list) walk(m.nestedType, m.enumType);
  };
  walk(file.messageType, file.enumType);
  return out;
}
