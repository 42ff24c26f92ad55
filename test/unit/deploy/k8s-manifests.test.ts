/**
 * Every Kubernetes overlay in deploy/k8s renders with `kubectl kustomize` and every object it
 * yields validates against the Kubernetes schemas (kubernetes-models, offline: no API server).
 * On top of the schemas: each overlay's TEE is what it says, ConfigMaps the pods read exist in
 * the render, containers run unprivileged, and the enclave processes never get the storage
 * credentials' Secret by name in their command line.
 *
 * kubectl is on the development image; without it the test is skipped, except under CI=true,
 * where that is a failure (CI must render the manifests it ships).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import * as core from "kubernetes-models/v1";
import * as apps from "kubernetes-models/apps/v1";

const root = join(import.meta.dirname, "..", "..", "..", "deploy", "k8s");
const kubectl = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" });
const haveKubectl = kubectl.status === 0;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

function render(dir: string): K8sObject[] {
  const r = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8" });
  assert.equal(r.status, 0, `kubectl kustomize ${dir}: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJSON() as K8sObject).filter(Boolean);
}

const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  "v1/Namespace": core.Namespace,
  "v1/ConfigMap": core.ConfigMap,
  "v1/Service": core.Service,
  "v1/Secret": core.Secret,
  "apps/v1/StatefulSet": apps.StatefulSet,
  "apps/v1/Deployment": apps.Deployment,
};

function validate(o: K8sObject): void {
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  assert.ok(Model, `no schema for ${o.apiVersion} ${o.kind} (${o.metadata.name})`);
  new Model(o as never).validate();
}

type PodSpec = { runtimeClassName?: string; containers: { name: string; image: string; args?: string[]; envFrom?: { configMapRef?: { name: string; optional?: boolean } }[]; securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean }; resources?: { limits?: Record<string, unknown> } }[]; securityContext?: { runAsNonRoot?: boolean } };

function pods(objects: K8sObject[]): { name: string; spec: PodSpec }[] {
  return objects.filter((o) => o.kind === "StatefulSet" || o.kind === "Deployment").map((o) => ({ name: o.metadata.name, spec: (o.spec as { template: { spec: PodSpec } }).template.spec }));
}

const overlays = ["simulated", "sgx-gramine", "coco"] as const;
const expectedTee = { simulated: "simulated", "sgx-gramine": "gramine-sgx", coco: "coco" } as const;

test("the schema check rejects a broken object (it can fail)", () => {
  assert.throws(() => validate({ apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x" }, spec: { replicas: "three" as unknown as number, selector: {}, template: {} } }));
});

for (const overlay of overlays) {
  test(`overlay ${overlay}: renders, every object validates, and its TEE is set`, (t) => {
    if (!haveKubectl) {
      if (process.env.CI === "true") assert.fail("kubectl is missing under CI: the Kubernetes manifests cannot be rendered");
      t.skip("kubectl not installed");
      return;
    }
    const objects = render(join(root, "overlays", overlay));
    for (const o of objects) validate(o);
    const names = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    for (const n of ["Namespace/cmr", "StatefulSet/cmr-verifier", "StatefulSet/cmr-coordinator", "Service/cmr-coordinator", "Deployment/cmr-worker", "ConfigMap/cmr-storage", "ConfigMap/cmr-tee"]) assert.ok(names.includes(n), `${overlay} lacks ${n}`);
    for (const o of objects) if (o.kind !== "Namespace") assert.equal(o.metadata.namespace, "cmr", `${o.kind}/${o.metadata.name} namespace`);
    const configMaps = new Set(objects.filter((o) => o.kind === "ConfigMap").map((o) => o.metadata.name));
    const tee = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === "cmr-tee")!;
    assert.equal(tee.data?.CMR_TEE, expectedTee[overlay]);
    // The coordinator keeps sealed state and SQLite on a volume that survives restarts.
    const coord = objects.find((o) => o.kind === "StatefulSet" && o.metadata.name === "cmr-coordinator")!;
    assert.equal((coord.spec as { volumeClaimTemplates?: unknown[] }).volumeClaimTemplates?.length, 1);
    for (const p of pods(objects)) {
      assert.equal(p.spec.securityContext?.runAsNonRoot, true, `${p.name} runs as non-root`);
      for (const c of p.spec.containers) {
        assert.match(c.image, /^registry\.example\.com\/cmr(-gramine)?:\d/, `${p.name}: a pinned image`);
        assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
        for (const ref of c.envFrom ?? []) if (ref.configMapRef && !ref.configMapRef.optional) assert.ok(configMaps.has(ref.configMapRef.name), `${p.name} reads missing ConfigMap ${ref.configMapRef.name}`);
      }
    }
    const byName = new Map(pods(objects).map((p) => [p.name, p.spec]));
    const enclaveNodes = ["cmr-coordinator", "cmr-worker"].map((n) => byName.get(n)!);
    if (overlay === "coco") {
      for (const s of enclaveNodes) assert.match(s.runtimeClassName ?? "", /^kata-qemu-(tdx|snp)$/);
      assert.equal(tee.data?.CMR_COCO_AA_URL, "http://127.0.0.1:8006");
    } else {
      for (const s of enclaveNodes) assert.equal(s.runtimeClassName, undefined);
    }
    if (overlay === "sgx-gramine") {
      for (const s of enclaveNodes) {
        const limits = s.containers[0]!.resources?.limits ?? {};
        for (const r of ["sgx.intel.com/epc", "sgx.intel.com/enclave", "sgx.intel.com/provision"]) assert.ok(r in limits, `${r} requested`);
        assert.ok(JSON.stringify(s).includes("/var/run/aesmd"), "the aesmd socket is mounted");
      }
      assert.match(tee.data?.CMR_ENCLAVE_LAUNCHER ?? "", /^gramine-sgx /);
    }
    if (overlay === "simulated") {
      for (const s of enclaveNodes) assert.ok(s.containers[0]!.args?.includes("--vendor-dir"), "nodes share the simulated vendor root");
    }
    // Workers register with their pod address, not the 0.0.0.0 they bind.
    assert.ok(JSON.stringify(byName.get("cmr-worker")).includes("http://$(POD_IP):7600"));
  });
}
