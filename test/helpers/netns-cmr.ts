/**
 * A cmr cluster in a network-namespace lab (test/helpers/netns-cluster.ts): an S3 server
 * (test/helpers/netns-s3-server.ts), a verifier, a coordinator and N workers, each a real `cmr`
 * process in its own namespace listening on that namespace's address, every node on
 * `--storage s3://...` over the bridge, coordinator and workers members of the verifier's group;
 * plus a client namespace where `cmr` commands run. The client's policy comes from
 * `cmr policy init` (run in the client namespace) and requires group attestation by this
 * verifier. Used by test/multihost/netns-cluster.test.ts and test/multihost/measure.ts.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CMR_BIN } from "./node-process.ts";
import { NetnsLab, type Started } from "./netns-cluster.ts";

const repo = join(import.meta.dirname, "..", "..");
const node = process.execPath;

export interface StorageScan {
  written: { requests: number; bytes: number; found: string[] };
  stored: { objects: number; bytes: number; found: string[] };
}

export interface CmrLab {
  lab: NetnsLab;
  workers: string[];
  /** Every host's name: verifier, coordinator, the workers, storage, client. */
  hosts: string[];
  coordinatorUrl: string;
  policyPath: string;
  bucket: string;
  storage: Started;
  nodes: Map<string, Started>;
  /** Milliseconds to build the namespaces, and to have the whole cluster up. */
  labMs: number;
  upMs: number;
  /** Ask the storage host what every write carried and what every stored object holds. */
  scanStorage(): Promise<StorageScan>;
  /** `cmr ARGS` in the client namespace. */
  cmr(args: string[], opts?: { timeoutMs?: number; onStderr?: (s: string) => void }): ReturnType<NetnsLab["exec"]>;
}

/**
 * Build the lab and start the cluster in it. `needle` is what the storage host searches every
 * write for. On failure everything started so far is removed before the error is thrown.
 */
export async function startCmrLab(o: { dir: string; workers: number; needle: string; bucket?: string }): Promise<CmrLab> {
  const workers = Array.from({ length: o.workers }, (_, i) => `w${i + 1}`);
  const hosts = ["verifier", "coordinator", ...workers, "storage", "client"];
  const bucket = o.bucket ?? "cmr-netns";
  const t0 = Date.now();
  const lab = NetnsLab.create(hosts);
  const labMs = Date.now() - t0;
  try {
    const vendor = join(o.dir, "vendor");
    const init = spawnSync(node, [CMR_BIN, "init", "--data-dir", vendor], { encoding: "utf8", env: { ...process.env, CMR_QUIET_SIM: "1" } });
    if (init.status !== 0) throw new Error(`cmr init failed: ${init.stderr}`);
    const dataDir = (h: string) => {
      const d = join(o.dir, h);
      mkdirSync(d, { recursive: true });
      return d;
    };
    const addr = (h: string) => lab.host(h).addr;
    const nodes = new Map<string, Started>();

    const storage = await lab.start("storage", [node, "--import", "tsx", join(repo, "test", "helpers", "netns-s3-server.ts"), addr("storage"), bucket, Buffer.from(o.needle).toString("hex")], { stdin: true });
    const s3 = { AWS_ENDPOINT_URL: storage.url, AWS_REGION: "us-east-1", AWS_ACCESS_KEY_ID: "netns-key", AWS_SECRET_ACCESS_KEY: "netns-secret", CMR_S3_PATH_STYLE: "1" };
    const storageSpec = `s3://${bucket}/cmr`;

    const verifier = await lab.start("verifier", [node, CMR_BIN, "verifier", "--host", addr("verifier"), "--port", "7500", "--data-dir", dataDir("verifier"), "--vendor-dir", vendor]);
    nodes.set("verifier", verifier);
    const group = /group ([0-9a-f]{64})/.exec(verifier.stdout())?.[1];
    if (!group) throw new Error(`the verifier printed no group id: ${verifier.stdout()}`);

    const coordinator = await lab.start("coordinator", [node, CMR_BIN, "coordinator", "--host", addr("coordinator"), "--port", "7400", "--storage", storageSpec, "--verifier", verifier.url, "--data-dir", dataDir("coordinator"), "--vendor-dir", vendor], { env: s3 });
    nodes.set("coordinator", coordinator);
    const coordinatorUrl = coordinator.url;
    // Another host: the operator token travels as configuration, not through a shared directory.
    const token = readFileSync(join(o.dir, "coordinator", "coordinator", "operator-token"), "utf8").trim();
    await Promise.all(
      workers.map(async (w) => {
        nodes.set(w, await lab.start(w, [node, CMR_BIN, "worker", "--id", w, "--coordinator", coordinatorUrl, "--host", addr(w), "--port", "7600", "--storage", storageSpec, "--verifier", verifier.url, "--data-dir", dataDir(w), "--vendor-dir", vendor], { env: { ...s3, CMR_OPERATOR_TOKEN: token } }));
      }),
    );
    const cmr: CmrLab["cmr"] = (args, opts = {}) => lab.exec("client", [node, CMR_BIN, ...args], opts);
    const listed = await cmr(["workers", "--coordinator", coordinatorUrl, "--wait-for", String(workers.length), "--timeout", "30", "--operator-token", token]);
    if (listed.code !== 0) throw new Error(`cmr workers --wait-for ${workers.length} failed: ${listed.stderr}`);
    for (const w of workers) if (!new RegExp(`\\b${w} +live`).test(listed.stdout)) throw new Error(`worker ${w} is not live: ${listed.stdout}`);

    // The data owner's policy: the coordinator's measurement (read over the lab network), the
    // vendor root, and group attestation by this verifier required.
    const policyPath = join(o.dir, "policy.json");
    const pol = await cmr(["policy", "init", "--coordinator", coordinatorUrl, "--data-dir", vendor, "--allow-simulated", "--out", policyPath]);
    if (pol.code !== 0) throw new Error(`cmr policy init failed: ${pol.stderr}`);
    const policy = JSON.parse(readFileSync(policyPath, "utf8")) as Record<string, unknown>;
    writeFileSync(policyPath, JSON.stringify({ ...policy, requireGroupAttestation: true, trustedVerifiers: [group] }, null, 2));

    const scanStorage = async (): Promise<StorageScan> => {
      const before = storage.stdout().length;
      storage.child.stdin!.write("scan\n");
      for (let i = 0; i < 300; i++) {
        const m = /^(scan|error) (.*)$/m.exec(storage.stdout().slice(before));
        if (m) {
          if (m[1] !== "scan") throw new Error(`the storage host could not scan: ${m[2]}`);
          return JSON.parse(m[2]!) as StorageScan;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error("the storage host did not answer the scan within 30 s");
    };
    return { lab, workers, hosts, coordinatorUrl, policyPath, bucket, storage, nodes, labMs, upMs: Date.now() - t0, scanStorage, cmr };
  } catch (e) {
    await lab.destroy();
    throw e;
  }
}
