// Package deps pins the chosen dependencies until real code imports them.
// Temporary: removed once every dependency has a real user.
package deps

import (
	_ "github.com/microsoft/go-mssqldb"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "github.com/refraction-networking/utls"
	_ "github.com/spf13/cobra"
	_ "github.com/spf13/viper"
	_ "go.uber.org/zap"
	_ "go.uber.org/zap/zaptest/observer"
	_ "golang.org/x/crypto/cryptobyte"
)
