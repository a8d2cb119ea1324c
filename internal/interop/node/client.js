#!/usr/bin/env node
// client.js: one tedious session for tdsproxy's Go interop tests.
//
// Input: one JSON object, from argv[2] or (when argv[2] is absent or "-") from
// stdin. The Go side uses stdin so the password never shows up in a process
// listing. Fields:
//
//   server, port, user, password
//   encrypt                  false | true | "strict"
//   trustServerCertificate   bool (default true)
//   cryptoCredentialsDetails {minVersion, maxVersion, ciphers, ...} passed to
//                            tls.createSecureContext by tedious
//   connectTimeout, requestTimeout   milliseconds, tedious's own timeouts
//   timeout                  milliseconds, hard limit on this whole script
//   query                    SQL text (default "SELECT 1")
//   batch                    true: execSqlBatch (default); false: execSql
//                            (sp_executesql RPC)
//   options                  extra tedious connection options, merged last
//   debug                    true: collect tedious "debug" events
//
// Output: exactly ONE JSON line on stdout:
//
//   {ok, rows, columns, rowCount, messages, error?, phase?, debug?}
//
// error is {message, code, name, number?, state?, class?, cause?, errors?}
// with tedious's own text. phase says where it failed: "connect" or "query".
// The exit status is 0 whenever a result was printed, success or not; it is
// non-zero only when this script itself is broken (bad input, crash).
'use strict';

const fs = require('fs');

const DEFAULT_HARD_TIMEOUT_MS = 60000;

let printed = false;

// emit writes the single result line and exits. Later calls are ignored so a
// late socket error cannot print a second line.
function emit(result, status = 0) {
  if (printed) return;
  printed = true;
  const line = JSON.stringify(result) + '\n';
  // Exit from the write callback: stdout to a pipe is asynchronous in Node and
  // process.exit would otherwise cut the line short.
  process.stdout.write(line, () => process.exit(status));
}

function fail(message) {
  // Script-level failure (bad config): still one JSON line, but non-zero.
  emit({ ok: false, rows: [], error: { message, code: 'ECLIENTJS', name: 'ClientScriptError' } }, 2);
}

// describeError flattens a tedious error (ConnectionError, RequestError,
// AggregateError, plain Error) into JSON, keeping the library's own text.
function describeError(err, depth = 0) {
  if (err === null || err === undefined) return { message: String(err) };
  if (typeof err !== 'object') return { message: String(err) };
  const out = {
    message: String(err.message !== undefined ? err.message : err),
    code: err.code !== undefined ? String(err.code) : undefined,
    // tedious's error classes do not set .name; the constructor says
    // ConnectionError / RequestError.
    name: (err.constructor && err.constructor.name) || err.name || 'Error',
  };
  for (const k of ['number', 'state', 'class', 'serverName', 'procName', 'lineNumber', 'errno', 'syscall']) {
    if (err[k] !== undefined && err[k] !== '') out[k] = err[k];
  }
  if (depth < 4) {
    if (err.cause !== undefined) out.cause = describeError(err.cause, depth + 1);
    if (Array.isArray(err.errors)) out.errors = err.errors.map((e) => describeError(e, depth + 1));
  }
  return out;
}

// cell turns a column value into JSON that the Go side can print as a string.
function cell(v) {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return '0x' + v.toString('hex').toUpperCase();
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'bigint') return v.toString();
  return v;
}

function readInput() {
  const arg = process.argv[2];
  const text = arg !== undefined && arg !== '-' ? arg : fs.readFileSync(0, 'utf8');
  return JSON.parse(text);
}

function main() {
  let cfg;
  try {
    cfg = readInput();
  } catch (e) {
    fail('client.js: cannot read JSON config: ' + e.message);
    return;
  }
  if (!cfg || typeof cfg !== 'object') {
    fail('client.js: config must be a JSON object');
    return;
  }

  let tedious;
  try {
    tedious = require('tedious');
  } catch (e) {
    fail('client.js: cannot load tedious (run npm ci in ' + __dirname + '): ' + e.message);
    return;
  }

  const hardTimeout = Number(cfg.timeout) > 0 ? Number(cfg.timeout) : DEFAULT_HARD_TIMEOUT_MS;
  const rows = [];
  let columns = [];
  let rowCount;
  const messages = [];
  const debugLines = [];
  let phase = 'connect';
  let lastServerError;

  const result = (extra) => {
    const r = { ok: false, rows, columns, messages, phase, ...extra };
    if (rowCount !== undefined) r.rowCount = rowCount;
    if (cfg.debug) r.debug = debugLines;
    return r;
  };

  const timer = setTimeout(() => {
    emit(result({
      error: {
        message: `client.js: no result within ${hardTimeout} ms (hard timeout)`,
        code: 'EHARDTIMEOUT',
        name: 'ClientScriptTimeout',
      },
    }));
  }, hardTimeout);
  timer.unref();

  const options = {
    port: Number(cfg.port) || 1433,
    encrypt: cfg.encrypt === undefined ? true : cfg.encrypt,
    trustServerCertificate: cfg.trustServerCertificate === undefined ? true : !!cfg.trustServerCertificate,
    rowCollectionOnRequestCompletion: false,
    useColumnNames: false,
    // The tests want one attempt and the client's first error, not a retry.
    maxRetriesOnTransientErrors: 0,
  };
  if (cfg.connectTimeout !== undefined) options.connectTimeout = Number(cfg.connectTimeout);
  if (cfg.requestTimeout !== undefined) options.requestTimeout = Number(cfg.requestTimeout);
  if (cfg.cryptoCredentialsDetails) options.cryptoCredentialsDetails = cfg.cryptoCredentialsDetails;
  if (cfg.debug) options.debug = { packet: true, data: false, payload: true, token: true };
  Object.assign(options, cfg.options || {});

  let connection;
  try {
    connection = new tedious.Connection({
      server: cfg.server || '127.0.0.1',
      authentication: {
        type: 'default',
        options: { userName: cfg.user || '', password: cfg.password || '' },
      },
      options,
    });
  } catch (e) {
    // tedious validates the config synchronously (TypeError/RangeError).
    fail('client.js: tedious rejected the config: ' + e.message);
    return;
  }

  connection.on('debug', (msg) => {
    if (!cfg.debug || debugLines.length >= 2000) return;
    // tedious's LOGIN7 payload dump prints the password in clear
    // (login7-payload.js toString: "Password:'%s'"): redact it, and any other
    // occurrence of the password text, before it can reach a test log.
    let line = String(msg).replace(/Password:'[^']*'/g, "Password:'<redacted>'");
    if (cfg.password) line = line.split(String(cfg.password)).join('<redacted>');
    debugLines.push(line);
  });
  connection.on('infoMessage', (t) => {
    messages.push({ kind: 'info', number: t.number, state: t.state, class: t.class, message: t.message });
  });
  connection.on('errorMessage', (t) => {
    lastServerError = t;
    messages.push({ kind: 'error', number: t.number, state: t.state, class: t.class, message: t.message });
  });
  // An 'error' event with no listener would crash the script; a socket error
  // after login (e.g. the server resets the connection mid-query) lands here.
  connection.on('error', (err) => {
    emit(result({ error: describeError(err) }));
  });
  connection.on('end', () => {
    if (!printed && phase !== 'done') {
      emit(result({ error: { message: 'client.js: connection ended before a result', code: 'EEND', name: 'ConnectionEnded' } }));
    }
  });

  connection.connect((err) => {
    if (err) {
      const e = describeError(err);
      // ELOGIN carries only the text; attach the server's number and state.
      if (lastServerError && e.number === undefined && err.code === 'ELOGIN') {
        e.number = lastServerError.number;
        e.state = lastServerError.state;
        e.class = lastServerError.class;
      }
      emit(result({ error: e }));
      return;
    }
    phase = 'query';
    const request = new tedious.Request(cfg.query || 'SELECT 1', (rerr, count) => {
      if (rerr) {
        emit(result({ error: describeError(rerr) }));
        connection.close();
        return;
      }
      rowCount = count;
      phase = 'done';
      const r = result({ ok: true });
      delete r.phase;
      connection.close();
      emit(r);
    });
    request.on('columnMetadata', (cols) => {
      const list = Array.isArray(cols) ? cols : Object.values(cols);
      columns = list.map((c) => c.colName);
    });
    request.on('row', (cols) => {
      const list = Array.isArray(cols) ? cols : Object.values(cols);
      if (rows.length < 10000) rows.push(list.map((c) => cell(c.value)));
    });
    if (cfg.batch === false) {
      connection.execSql(request);
    } else {
      connection.execSqlBatch(request);
    }
  });
}

process.on('uncaughtException', (e) => {
  // A crash inside tedious is still a result the tests want to see, but it
  // means something is broken: report it and exit non-zero.
  emit({ ok: false, rows: [], error: { ...describeError(e), code: 'EUNCAUGHT' } }, 3);
});

main();
