package interop

// Target is one server a test connects to (an emulator, a proxy) and the
// login to use; its methods are the per-client connection settings, so a
// test names the server once and picks the client. Each result is a plain
// config value: set Query, Timeout, certificates and the rest on it.
type Target struct {
	Host     string // "" means 127.0.0.1
	Port     int
	User     string
	Password string
}

// MSSQL is go-mssqldb with the DSN's encrypt value.
func (t Target) MSSQL(encrypt string) MSSQLConfig {
	return MSSQLConfig{Host: t.Host, Port: t.Port, User: t.User, Password: t.Password, Encrypt: encrypt}
}

// Tedious is tedious with its encrypt option (a bool or "strict").
func (t Target) Tedious(encrypt any) TediousConfig {
	return TediousConfig{Server: t.Host, Port: t.Port, User: t.User, Password: t.Password, Encrypt: encrypt}
}

// TSQL is FreeTDS tsql with its encryption setting.
func (t Target) TSQL(encryption string) TSQLConfig {
	return TSQLConfig{Host: t.Host, Port: t.Port, User: t.User, Password: t.Password, Encryption: encryption}
}

// JDBC is the Microsoft JDBC driver with its encrypt property.
func (t Target) JDBC(encrypt string) JDBCConfig {
	return JDBCConfig{Host: t.Host, Port: t.Port, User: t.User, Password: t.Password, Encrypt: encrypt}
}

// ODBC is ODBC Driver 18 with its Encrypt keyword.
func (t Target) ODBC(encrypt string) ODBCConfig {
	return ODBCConfig{Host: t.Host, Port: t.Port, User: t.User, Password: t.Password, Encrypt: encrypt}
}
