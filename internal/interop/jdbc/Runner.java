// Runner: Microsoft JDBC Driver for SQL Server sessions for tdsproxy's Go
// interop tests (internal/interop/jdbc.go). One JVM runs many cases, one
// after the other, because JVM start-up costs far more than a connection.
//
// Input (stdin): cases in java.util.Properties format, each ended by a line
// holding only "." ; stdin's end ends the JVM. Keys:
//
//   host, port, user, password
//   query                   SQL text (default "SELECT 1")
//   encrypt                 false | true | strict  (the driver's own property)
//   trustServerCertificate  true | false
//   serverCertificate       path of the certificate to trust in strict mode
//   loginTimeout            seconds (the driver's own property)
//   prop.NAME               any other driver property, passed as is
//
// The password travels on stdin, never in argv. TLS versions and suites are
// JVM-wide (jdk.tls.client.protocols / jdk.tls.client.cipherSuites), so the
// Go side runs one JVM per set of such system properties.
//
// Output (stdout): one line per case, "@@result " followed by a JSON object:
//
//   {ok, columns, rows, messages, phase?, error?, elapsedMs}
//
// error is {class, message, errorCode, sqlState, number?, state?, severity?,
// causes: [{class, message}]} with the driver's own texts; number, state and
// severity come from the server's ERROR token when there is one. phase is
// "connect" or "query". Nothing else is printed on stdout.
import com.microsoft.sqlserver.jdbc.SQLServerError;
import com.microsoft.sqlserver.jdbc.SQLServerException;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.SQLWarning;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

public final class Runner {
    private static final int MAX_ROWS = 10000;

    public static void main(String[] args) throws Exception {
        // The driver may log through java.util.logging to stderr; stdout
        // carries results only.
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        System.setOut(System.err);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        StringBuilder block = new StringBuilder();
        String line;
        while ((line = in.readLine()) != null) {
            if (!line.equals(".")) {
                block.append(line).append('\n');
                continue;
            }
            Properties c = new Properties();
            c.load(new StringReader(block.toString()));
            block.setLength(0);
            out.println("@@result " + run(c));
        }
    }

    static String run(Properties c) {
        long start = System.nanoTime();
        List<String> columns = new ArrayList<>();
        List<List<String>> rows = new ArrayList<>();
        List<String> messages = new ArrayList<>();
        String phase = "connect";
        String url = "jdbc:sqlserver://" + c.getProperty("host", "127.0.0.1") + ":" + c.getProperty("port", "1433");
        Properties p = new Properties();
        p.setProperty("user", c.getProperty("user", ""));
        p.setProperty("password", c.getProperty("password", ""));
        for (String k : new String[] {"encrypt", "trustServerCertificate", "serverCertificate", "loginTimeout"}) {
            if (c.getProperty(k) != null) {
                p.setProperty(k, c.getProperty(k));
            }
        }
        for (String k : c.stringPropertyNames()) {
            if (k.startsWith("prop.")) {
                p.setProperty(k.substring(5), c.getProperty(k));
            }
        }
        try (Connection conn = DriverManager.getConnection(url, p)) {
            phase = "query";
            warnings(conn.getWarnings(), messages);
            try (Statement st = conn.createStatement()) {
                boolean isRS = st.execute(c.getProperty("query", "SELECT 1"));
                if (isRS) {
                    try (ResultSet rs = st.getResultSet()) {
                        ResultSetMetaData md = rs.getMetaData();
                        for (int i = 1; i <= md.getColumnCount(); i++) {
                            columns.add(md.getColumnLabel(i));
                        }
                        while (rs.next()) {
                            List<String> r = new ArrayList<>();
                            for (int i = 1; i <= md.getColumnCount(); i++) {
                                String v = rs.getString(i);
                                r.add(v == null ? "NULL" : v);
                            }
                            if (rows.size() < MAX_ROWS) {
                                rows.add(r);
                            }
                        }
                    }
                }
                warnings(st.getWarnings(), messages);
            }
            return result(true, columns, rows, messages, null, null, start);
        } catch (Throwable e) {
            return result(false, columns, rows, messages, phase, e, start);
        }
    }

    static void warnings(SQLWarning w, List<String> messages) {
        for (int i = 0; w != null && i < 100; w = w.getNextWarning(), i++) {
            messages.add("{\"kind\":\"info\",\"number\":" + w.getErrorCode() + ",\"sqlState\":" + q(w.getSQLState())
                    + ",\"message\":" + q(w.getMessage()) + "}");
        }
    }

    static String result(boolean ok, List<String> columns, List<List<String>> rows, List<String> messages,
            String phase, Throwable e, long start) {
        StringBuilder b = new StringBuilder("{\"ok\":").append(ok);
        b.append(",\"columns\":[");
        for (int i = 0; i < columns.size(); i++) {
            b.append(i > 0 ? "," : "").append(q(columns.get(i)));
        }
        b.append("],\"rows\":[");
        for (int i = 0; i < rows.size(); i++) {
            b.append(i > 0 ? ",[" : "[");
            List<String> r = rows.get(i);
            for (int j = 0; j < r.size(); j++) {
                b.append(j > 0 ? "," : "").append(q(r.get(j)));
            }
            b.append(']');
        }
        b.append("],\"messages\":[").append(String.join(",", messages)).append(']');
        if (phase != null) {
            b.append(",\"phase\":").append(q(phase));
        }
        if (e != null) {
            b.append(",\"error\":{\"class\":").append(q(e.getClass().getName()));
            b.append(",\"message\":").append(q(e.getMessage()));
            if (e instanceof SQLException) {
                SQLException se = (SQLException) e;
                b.append(",\"errorCode\":").append(se.getErrorCode());
                b.append(",\"sqlState\":").append(q(se.getSQLState()));
            }
            if (e instanceof SQLServerException) {
                SQLServerError se = ((SQLServerException) e).getSQLServerError();
                if (se != null) {
                    b.append(",\"number\":").append(se.getErrorNumber());
                    b.append(",\"state\":").append(se.getErrorState());
                    b.append(",\"severity\":").append(se.getErrorSeverity());
                    b.append(",\"server\":").append(q(se.getServerName()));
                }
            }
            b.append(",\"causes\":[");
            Throwable t = e.getCause();
            for (int i = 0; t != null && i < 8; t = t.getCause(), i++) {
                b.append(i > 0 ? "," : "").append("{\"class\":").append(q(t.getClass().getName()))
                        .append(",\"message\":").append(q(t.getMessage())).append('}');
            }
            b.append(']');
            b.append('}');
        }
        b.append(",\"elapsedMs\":").append((System.nanoTime() - start) / 1000000);
        return b.append('}').toString();
    }

    // q quotes a string as JSON (null as null).
    static String q(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            switch (ch) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (ch < 0x20) {
                        b.append(String.format("\\u%04x", (int) ch));
                    } else {
                        b.append(ch);
                    }
            }
        }
        return b.append('"').toString();
    }
}
