"""runner.py: one Microsoft ODBC Driver 18 for SQL Server session, through
Microsoft's mssql-python, for tdsproxy's Go interop tests (../odbc.go).

Input (stdin, so the password never shows in a process listing): one JSON
object:

  server, port, user, password
  encrypt                 "no" | "yes" | "strict" (ODBC Driver 18's Encrypt;
                          "optional"/"mandatory" are its synonyms)
  trustServerCertificate  bool
  serverCertificate       path of the certificate a strict session trusts
  hostNameInCertificate   the name to check the certificate against
  loginTimeout            seconds (SQL_ATTR_LOGIN_TIMEOUT)
  query                   SQL text (default "SELECT 1")
  extra                   further connection-string keywords

TLS versions and cipher suites are OpenSSL's: the Go side points
OPENSSL_CONF at a generated file. mssql-python ships the ODBC driver's
binaries (package mssql-python-odbc); MSSQL_PYTHON_NATIVE_PROVIDER is set to
msodbcsql18 so that its Rust driver is never chosen instead.

Output: exactly one JSON line on stdout:

  {ok, columns, rows, messages, phase?, error?, elapsedMs}

error is {class, message, sqlstate, odbc}: message is str() of the
mssql_python exception (what an application prints); odbc is the ODBC
driver's own diagnostic text, "[Microsoft][ODBC Driver 18 for SQL
Server]...", which mssql-python shortens in message. mssql-python 1.16 does
not expose the native error number (SQLGetDiagRec's NativeError).
The exit status is 0 whenever a result was printed.
"""

import json
import os
import re
import sys
import time

os.environ["MSSQL_PYTHON_NATIVE_PROVIDER"] = "msodbcsql18"

START = time.monotonic()


def emit(result, status=0):
    result["elapsedMs"] = int((time.monotonic() - START) * 1000)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.exit(status)


def braced(v):
    """An ODBC connection-string value, braced when it needs it."""
    v = str(v)
    if any(c in v for c in ";{}= ") or v != v.strip():
        return "{" + v.replace("}", "}}") + "}"
    return v


def main():
    try:
        cfg = json.loads(sys.stdin.read())
    except Exception as e:  # noqa: BLE001 - a broken harness, not a result
        emit({"ok": False, "rows": [], "error": {"class": "RunnerError", "message": "runner.py: bad JSON input: %s" % e}}, 2)
    try:
        import mssql_python
        from mssql_python import helpers
    except Exception as e:  # noqa: BLE001
        emit({"ok": False, "rows": [], "error": {"class": "RunnerError", "message": "runner.py: cannot import mssql_python: %s" % e}}, 2)

    # One physical connection per run, like the other runners: no pool (a
    # pooled connection is reset, not closed, when the run ends).
    mssql_python.pooling(enabled=False)

    # Keep the SQLSTATE and the driver's untruncated text of statement
    # errors: mssql_python maps them to exception classes and shortens the
    # text, but keeps neither.
    last = {}
    orig_raise = helpers.raise_exception

    def keep(sqlstate, ddbc_error):
        last["sqlstate"], last["odbc"] = sqlstate, ddbc_error
        return orig_raise(sqlstate, ddbc_error)

    helpers.raise_exception = keep

    parts = ["Server=tcp:%s,%d" % (cfg.get("server") or "127.0.0.1", int(cfg.get("port") or 1433))]
    parts.append("UID=" + braced(cfg.get("user", "")))
    parts.append("PWD=" + braced(cfg.get("password", "")))
    if cfg.get("encrypt"):
        parts.append("Encrypt=" + cfg["encrypt"])
    if "trustServerCertificate" in cfg:
        parts.append("TrustServerCertificate=" + ("yes" if cfg["trustServerCertificate"] else "no"))
    if cfg.get("serverCertificate"):
        parts.append("ServerCertificate=" + braced(cfg["serverCertificate"]))
    if cfg.get("hostNameInCertificate"):
        parts.append("HostNameInCertificate=" + braced(cfg["hostNameInCertificate"]))
    for k, v in (cfg.get("extra") or {}).items():
        parts.append("%s=%s" % (k, braced(v)))
    conn_str = ";".join(parts)

    columns, rows, messages = [], [], []
    phase = "connect"
    conn = None
    try:
        conn = mssql_python.connect(conn_str, autocommit=True, timeout=int(cfg.get("loginTimeout") or 0))
        phase = "query"
        cur = conn.cursor()
        cur.execute(cfg.get("query") or "SELECT 1")
        if cur.description:
            columns = [d[0] for d in cur.description]
            for r in cur.fetchall()[:10000]:
                rows.append(["NULL" if v is None else str(v) for v in r])
        for m in cur.messages:
            messages.append({"kind": "info", "message": str(m)})
        cur.close()
        conn.close()
        conn = None
    except Exception as e:  # noqa: BLE001 - every driver error is a result
        err = {"class": type(e).__name__, "message": str(e)}
        ctx = e.__context__
        m = re.match(r"^SQLSTATE:([A-Z0-9]{5}):(.*)$", str(ctx), re.DOTALL) if ctx is not None else None
        if m:
            err["sqlstate"], err["odbc"] = m.group(1), m.group(2)
        elif last:
            err["sqlstate"], err["odbc"] = last.get("sqlstate"), last.get("odbc")
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - the first error is the result
                pass
        emit({"ok": False, "columns": columns, "rows": rows, "messages": messages, "phase": phase, "error": err})
    emit({"ok": True, "columns": columns, "rows": rows, "messages": messages})


if __name__ == "__main__":
    main()
