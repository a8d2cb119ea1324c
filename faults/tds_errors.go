package faults

import (
	"slices"
	"strconv"
	"strings"

	"github.com/tdsproxy/tdsproxy/tds"
)

// serverError is an error SQL Server or Azure SQL sends, as the real
// server words it: tds_error answers with it when the rule gives only the
// number (docs/tds-faults.md). The text keeps the server's placeholders
// filled from LOGIN7 when it is visible: {user}, {database}, {server}.
type serverError struct {
	Number int32
	Class  uint8
	State  uint8
	// Message is the server's text with {user}, {database} and {server}.
	Message string
	// Transient: the numbers client retry policies treat as transient
	// (tedious's maxRetriesOnTransientErrors, SqlClient's
	// SqlConfigurableRetryFactory defaults).
	Transient bool
}

// serverErrors are the numbers tds_error knows. -2 is not among them: it
// is a client-side timeout, never sent by a server.
var serverErrors = []serverError{
	{Number: 18456, Class: 14, State: 1, Message: "Login failed for user '{user}'."},
	{Number: 4060, Class: 11, State: 1, Message: `Cannot open database "{database}" requested by the login. The login failed.`, Transient: true},
	{Number: 40613, Class: 17, State: 1, Message: "Database '{database}' on server '{server}' is not currently available. Please retry the connection later. If the problem persists, contact customer support, and provide them the session tracing ID of '00000000-0000-0000-0000-000000000000'.", Transient: true},
	{Number: 40197, Class: 17, State: 1, Message: "The service has encountered an error processing your request. Please try again. Error code 4815.", Transient: true},
	{Number: 40501, Class: 20, State: 1, Message: "The service is currently busy. Retry the request after 10 seconds. Incident ID: 00000000-0000-0000-0000-000000000000. Code: 0.", Transient: true},
	{Number: 49918, Class: 16, State: 1, Message: "Cannot process request. Not enough resources to process request. The service is currently busy. Please retry the request later.", Transient: true},
	{Number: 49919, Class: 16, State: 1, Message: `Cannot process create or update request. Too many create or update operations in progress for subscription "0".`, Transient: true},
	{Number: 49920, Class: 16, State: 1, Message: `Cannot process request. Too many operations in progress for subscription "0".`, Transient: true},
	{Number: 10928, Class: 20, State: 1, Message: "Resource ID : 1. The request limit for the database is 0 and has been reached. See 'https://docs.microsoft.com/azure/azure-sql/database/resource-limits-logical-server' for assistance.", Transient: true},
	{Number: 10929, Class: 20, State: 1, Message: "Resource ID : 1. The request minimum guarantee is 0, maximum limit is 0, and the current usage for the database is 0. However, the server is currently too busy to support requests greater than 0 for this database. See 'https://docs.microsoft.com/azure/azure-sql/database/resource-limits-logical-server' for assistance. Otherwise, please try again later.", Transient: true},
	{Number: 42108, Class: 20, State: 1, Message: "Can not connect to the SQL pool since it is paused. Please resume the SQL pool and try again.", Transient: true},
	{Number: 42109, Class: 20, State: 1, Message: "The SQL pool is warming up. Please try again.", Transient: true},
	{Number: 233, Class: 20, State: 0, Message: "A connection was successfully established with the server, but then an error occurred during the login process.", Transient: true},
	{Number: 1205, Class: 13, State: 51, Message: "Transaction (Process ID 52) was deadlocked on lock resources with another process and has been chosen as the deadlock victim. Rerun the transaction.", Transient: true},
}

// serverErrorByNumber returns the known error n.
func serverErrorByNumber(n int32) (serverError, bool) {
	i := slices.IndexFunc(serverErrors, func(e serverError) bool { return e.Number == n })
	if i < 0 {
		return serverError{}, false
	}
	return serverErrors[i], true
}

// KnownErrorNumbers lists the numbers tds_error answers with the real
// server's text, class and state.
func KnownErrorNumbers() []int32 {
	out := make([]int32, len(serverErrors))
	for i, e := range serverErrors {
		out[i] = e.Number
	}
	return out
}

// knownNumbersText is KnownErrorNumbers as "18456, 4060, ...".
func knownNumbersText() string {
	s := make([]string, len(serverErrors))
	for i, e := range serverErrors {
		s[i] = strconv.Itoa(int(e.Number))
	}
	return strings.Join(s, ", ")
}

// message fills the placeholders of e's text from what LOGIN7 showed.
func (e serverError) message(user, database, server string) tds.ServerMessage {
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	r := strings.NewReplacer("{user}", or(user, "sa"), "{database}", or(database, "master"), "{server}", or(server, "tdsproxy"))
	return tds.ServerMessage{Number: e.Number, Class: e.Class, State: e.State, Message: r.Replace(e.Message), ServerName: or(server, "tdsproxy"), Line: 1}
}
