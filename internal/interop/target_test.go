package interop

import "testing"

// Each client's config from one Target carries the same server and login.
func TestTargetConfigs(t *testing.T) {
	tg := Target{Host: "h", Port: 7, User: "u", Password: "p"}
	if c := tg.MSSQL("strict"); c.Host != "h" || c.Port != 7 || c.User != "u" || c.Password != "p" || c.Encrypt != "strict" {
		t.Errorf("MSSQL = %#v", c)
	}
	if c := tg.Tedious(false); c.Server != "h" || c.Port != 7 || c.User != "u" || c.Password != "p" || c.Encrypt != false {
		t.Errorf("Tedious = %+v", c.Server)
	}
	if c := tg.TSQL("require"); c.Host != "h" || c.Port != 7 || c.User != "u" || c.Password != "p" || c.Encryption != "require" {
		t.Errorf("TSQL = %+v", c.Host)
	}
	if c := tg.JDBC("true"); c.Host != "h" || c.Port != 7 || c.User != "u" || c.Password != "p" || c.Encrypt != "true" {
		t.Errorf("JDBC = %+v", c.Host)
	}
	if c := tg.ODBC("yes"); c.Host != "h" || c.Port != 7 || c.User != "u" || c.Password != "p" || c.Encrypt != "yes" {
		t.Errorf("ODBC = %+v", c.Host)
	}
}
