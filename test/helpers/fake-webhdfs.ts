/**
 * A FAKE WebHDFS cluster for tests, faithful to what cmr's client relies on (Hadoop 3 WebHDFS
 * REST API): a NameNode and a DataNode on two loopback ports; CREATE and OPEN answer 307 with a
 * Location on the DataNode (CREATE creates the file at the NameNode first, as HDFS does, so a
 * failed write leaves a partial file); errors are `{"RemoteException": {exception,
 * javaClassName, message}}` with Hadoop's statuses (FileAlreadyExistsException 403,
 * FileNotFoundException 404, AccessControlException 403); `user.name` or `delegation` is
 * required. Files live in memory, so tests can scan every stored byte.
 *
 * Faults: `failNextWrite(afterBytes)` makes the DataNode drop the connection mid-write, as a
 * dying DataNode does; `requireUser` refuses other users.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeWebHdfs {
  namenode: string;
  spec(path: string): string;
  files: Map<string, Buffer>;
  /** Paths that are being written (created at the NameNode, not yet closed by the DataNode). */
  open: Set<string>;
  requests: { method: string; url: string }[];
  failNextWrite(afterBytes: number): void;
  stop(): Promise<void>;
}

function remote(res: ServerResponse, status: number, exception: string, message: string): void {
  const body = JSON.stringify({ RemoteException: { exception, javaClassName: `org.apache.hadoop.${exception === "FileNotFoundException" || exception === "FileAlreadyExistsException" ? "fs" : "security"}.${exception}`, message } });
  res.writeHead(status, { "content-type": "application/json" }).end(body);
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as AddressInfo).port };
}

export async function startFakeWebHdfs(opts: { requireUser?: string } = {}): Promise<FakeWebHdfs> {
  const files = new Map<string, Buffer>();
  const open = new Set<string>();
  const requests: { method: string; url: string }[] = [];
  let failAfter: number | undefined;
  const dirs = (): Set<string> => {
    const d = new Set<string>(["/"]);
    for (const f of files.keys()) {
      const parts = f.split("/");
      for (let i = 2; i < parts.length; i++) d.add(parts.slice(0, i).join("/"));
    }
    return d;
  };
  // DataNode: takes the bytes of a CREATE the NameNode redirected here, serves OPEN.
  const dn = await listen((req, res) => {
    requests.push({ method: req.method!, url: `dn${req.url}` });
    const url = new URL(req.url!, "http://dn");
    const path = decodeURIComponent(url.pathname.replace(/^\/webhdfs\/v1/, ""));
    if (req.method === "PUT" && url.searchParams.get("op") === "CREATE") {
      const limit = failAfter;
      failAfter = undefined;
      const parts: Buffer[] = [];
      let n = 0;
      req.on("data", (d: Buffer) => {
        parts.push(d);
        n += d.length;
        if (limit !== undefined && n >= limit) {
          // The DataNode dies mid-write: the partial file stays, the connection breaks.
          files.set(path, Buffer.concat(parts));
          req.socket.destroy();
        }
      });
      req.on("end", () => {
        files.set(path, Buffer.concat(parts));
        open.delete(path);
        res.writeHead(201, { location: `hdfs://fake${path}`, "content-length": "0" }).end();
      });
      return;
    }
    if (req.method === "GET" && url.searchParams.get("op") === "OPEN") {
      const f = files.get(path);
      if (!f) return remote(res, 404, "FileNotFoundException", `File does not exist: ${path}`);
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": f.length }).end(f);
      return;
    }
    remote(res, 400, "IllegalArgumentException", "bad DataNode request");
  });
  const dnBase = `http://127.0.0.1:${dn.port}`;
  const nn = await listen((req, res) => {
    requests.push({ method: req.method!, url: req.url! });
    const url = new URL(req.url!, "http://nn");
    if (!url.pathname.startsWith("/webhdfs/v1/")) return remote(res, 404, "IllegalArgumentException", "not a WebHDFS path");
    const path = decodeURIComponent(url.pathname.slice("/webhdfs/v1".length)).replace(/\/+$/, "") || "/";
    const user = url.searchParams.get("user.name");
    const token = url.searchParams.get("delegation");
    if (!user && !token) return remote(res, 401, "SecurityException", "Failed to obtain user group information: no user.name or delegation");
    if (opts.requireUser && user !== opts.requireUser && token === null) return remote(res, 403, "AccessControlException", `Permission denied: user=${user}, access=WRITE, inode="${path}"`);
    const op = url.searchParams.get("op");
    const auth = token ? `delegation=${encodeURIComponent(token)}` : `user.name=${encodeURIComponent(user!)}`;
    if (req.method === "PUT" && op === "CREATE") {
      if (files.has(path)) {
        if (url.searchParams.get("overwrite") !== "true") return remote(res, 403, "FileAlreadyExistsException", `${path} for client 127.0.0.1 already exists`);
      }
      // HDFS creates the file at the NameNode before any byte reaches a DataNode.
      files.set(path, Buffer.alloc(0));
      open.add(path);
      res.writeHead(307, { location: `${dnBase}/webhdfs/v1${url.pathname.slice("/webhdfs/v1".length)}?op=CREATE&${auth}&namenoderpcaddress=fake:8020&overwrite=false`, "content-length": "0" }).end();
      return;
    }
    if (req.method === "GET" && op === "OPEN") {
      if (!files.has(path)) return remote(res, 404, "FileNotFoundException", `File does not exist: ${path}`);
      res.writeHead(307, { location: `${dnBase}/webhdfs/v1${url.pathname.slice("/webhdfs/v1".length)}?op=OPEN&${auth}&namenoderpcaddress=fake:8020&offset=0`, "content-length": "0" }).end();
      return;
    }
    if (req.method === "GET" && op === "GETFILESTATUS") {
      const f = files.get(path);
      if (f) return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ FileStatus: { type: "FILE", length: f.length, pathSuffix: "" } }));
      if (dirs().has(path)) return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ FileStatus: { type: "DIRECTORY", length: 0, pathSuffix: "" } }));
      return remote(res, 404, "FileNotFoundException", `File does not exist: ${path}`);
    }
    if (req.method === "GET" && op === "LISTSTATUS") {
      if (!dirs().has(path)) return remote(res, 404, "FileNotFoundException", `File ${path} does not exist.`);
      const children = new Map<string, string>();
      const prefix = path === "/" ? "/" : `${path}/`;
      for (const f of files.keys()) {
        if (!f.startsWith(prefix)) continue;
        const rest = f.slice(prefix.length).split("/");
        children.set(rest[0]!, rest.length > 1 ? "DIRECTORY" : "FILE");
      }
      return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ FileStatuses: { FileStatus: [...children].map(([pathSuffix, type]) => ({ pathSuffix, type })) } }));
    }
    if (req.method === "DELETE" && op === "DELETE") {
      let found = false;
      for (const f of [...files.keys()]) {
        if (f === path || (url.searchParams.get("recursive") === "true" && f.startsWith(`${path}/`))) {
          files.delete(f);
          found = true;
        }
      }
      return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ boolean: found }));
    }
    remote(res, 400, "UnsupportedOperationException", `op ${op} with ${req.method}`);
  });
  const namenode = `127.0.0.1:${nn.port}`;
  return {
    namenode,
    spec: (path) => `webhdfs://${namenode}${path}`,
    files,
    open,
    requests,
    failNextWrite(afterBytes) {
      failAfter = afterBytes;
    },
    async stop() {
      for (const s of [nn.server, dn.server]) {
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
    },
  };
}
