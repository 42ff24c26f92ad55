/**
 * The operator console in a real browser (issue #16 item 2): headless Chromium from Debian
 * (/usr/bin/chromium; `.ci/run` installs it) driven by playwright-core, against a coordinator,
 * two workers and a verification node on loopback. It checks the page while a job runs (live
 * stage progress), after it (per-stage timings, attested measurements, the attestation audit),
 * after a failing job (its code in Failures), that the data endpoint needs the operator token,
 * and that neither the page nor its data ever holds the input's plaintext or a sealed value.
 * It saves a screenshot (CMR_UPDATE_SCREENSHOT=1 also writes docs/console.png).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { startLocalCluster, type LocalCluster } from "../../src/cli/local-cluster.ts";
import { Client } from "../../src/client/sdk.ts";
import { localPolicy } from "../../src/cli/common.ts";

const CHROMIUM = "/usr/bin/chromium";
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const CANARY = "CANARY-d41f7c";
const dir = mkdtempSync(join(tmpdir(), "cmr-console-"));
const dataDir = join(dir, ".cmr");
let cluster: LocalCluster;
let browser: BrowserContext;
let page: Page;
let token: string;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it)`);
  cluster = await startLocalCluster({ dataDir, separateProcesses: true, withVerifier: true, workers: [{ workerId: "console-w1", capabilities: ["map", "reduce"] }, { workerId: "console-w2", capabilities: ["map", "reduce"], dataTypes: ["transaction"] }] });
  token = readFileSync(join(dataDir, "nodes", "coordinator", "coordinator", "operator-token"), "utf8").trim();
  // A fresh profile directory for every run (launchPersistentContext passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "cmr-chromium-profile-")), { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 900 } });
  page = await browser.newPage();
});
after(async () => {
  await browser?.close();
  await cluster?.stop();
});

test("the console shows nodes, the verifier's group, live job progress, timings, the audit and failures; never plaintext or keys", { timeout: 180_000 }, async () => {
  // Without the token the data endpoint refuses; the page itself holds no data.
  const anon = await fetch(`${cluster.url}/v1/console/state`);
  assert.equal(anon.status, 401);
  const html = await (await fetch(`${cluster.url}/console`)).text();
  assert.match(html, /cmr console/);
  assert.doesNotMatch(html, /console-w1/);

  await page.goto(`${cluster.url}/console?interval=250#token=${token}`);
  await page.waitForSelector("body[data-ready='1']");
  assert.equal(new URL(page.url()).hash, "", "the token is taken out of the address bar");
  await page.waitForSelector("tr[data-worker='console-w1'] .live");
  const nodesText = await page.textContent("#nodes");
  assert.match(nodesText!, /console-w2.*live.*not attested yet.*map, reduce.*transaction/s);
  assert.match((await page.textContent("#simulated"))!, /SIMULATED TEE/);
  assert.match((await page.textContent("#verifier"))!, /group \(gvcert id\) [0-9a-f]{16,}.*revocations: 0 revoked member key\(s\), list issued \d{4}-\d\d-\d\dT/s);

  // A job big enough to be seen running: 300,000 records with a canary in every memo and key.
  const input = join(dir, "tx.csv");
  const lines = ["account,amount,memo"];
  for (let i = 0; i < 300_000; i++) lines.push(`${CANARY}-acct-${i % 97},${(i % 1000) / 100},${CANARY} memo ${i}`);
  writeFileSync(input, lines.join("\n") + "\n");
  const client = new Client({ coordinator: cluster.url, policy: await localPolicy(dataDir) });
  const upload = await client.upload(input);
  const job = await client.submit({ upload, op: "sum", key: "account", value: "amount" });
  const running = `tr[data-job='${job.id}']:not([data-state='succeeded']):not([data-state='failed']):not([data-state='queued'])`;
  await page.waitForSelector(running, { timeout: 60_000 });
  const live = await page.textContent(running);
  assert.match(live!, /(splitting|mapping|reducing|finalizing)/);
  assert.match(live!, /map \d+\/\d+/);
  await page.screenshot({ path: join(dir, "console-running.png") });
  await job.wait();
  const row = `tr[data-job='${job.id}'][data-state='succeeded']`;
  await page.waitForSelector(row);
  const done = (await page.textContent(row))!;
  assert.match(done, /splitting \d+ ms, mapping \d+ ms, reducing \d+ ms, finalizing \d+ ms/);
  assert.match(done, /map 2\/2/);
  assert.match(done, /[1-9]\d* accepted, 0 refused/);
  assert.match(done, /97 rows/);
  // Nodes now show what the coordinator enclave attested.
  await page.waitForSelector("tr[data-worker='console-w1'] code");
  assert.match((await page.textContent("tr[data-worker='console-w1']"))!, new RegExp(`${cluster.measurement}.*simulated`));
  const audit = await page.textContent(`details[data-job='${job.id}']`);
  assert.match(audit!, /console-w1.*map.*accepted/s);

  // A failing job: its code shows under Failures.
  const bad = join(dir, "bad.csv");
  writeFileSync(bad, `account,amount\n${CANARY},1\n"unbalanced,2\n`);
  const badJob = await client.submit({ upload: await client.upload(bad), op: "sum", key: "account", value: "amount" });
  await assert.rejects(badJob.wait(), (e: { code: string }) => e.code === "CMR_RECORD_MALFORMED");
  await page.waitForSelector("#failures tr[data-code='CMR_RECORD_MALFORMED']");
  assert.match((await page.textContent("#failures"))!, new RegExp(`${badJob.id}.*job failed.*CMR_RECORD_MALFORMED.*bad\\.csv line 3`, "s"));

  // Neither what the browser shows nor the data it fetched holds plaintext or sealed values.
  const state = await (await fetch(`${cluster.url}/v1/console/state`, { headers: { authorization: `Bearer ${token}` } })).text();
  const shown = await page.content();
  for (const [what, text] of [["state", state], ["page", shown]] as const) {
    assert.ok(!text.includes(CANARY), `${what} has no plaintext`);
    assert.doesNotMatch(text, /sealed|resultObject|wrapped|jobs\/j[0-9a-f]{16}\//i, `${what} has no sealed values or object names`);
  }
  assert.ok(state.includes(job.id) && state.includes(cluster.measurement), "the state is not trivially empty");

  await page.screenshot({ path: join(dir, "console.png"), fullPage: true });
  assert.deepEqual([...readFileSync(join(dir, "console.png")).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  if (process.env.CMR_UPDATE_SCREENSHOT === "1") {
    copyFileSync(join(dir, "console-running.png"), join(import.meta.dirname, "..", "..", "docs", "console-running.png"));
    copyFileSync(join(dir, "console.png"), join(import.meta.dirname, "..", "..", "docs", "console.png"));
  }
});
