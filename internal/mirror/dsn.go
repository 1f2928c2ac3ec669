package mirror

// DSN environment variables, in the order they are read: the alert-specific
// one first, then the conventional DATABASE_URL.
const (
	EnvAlertDatabaseURL = "ALERT_DATABASE_URL"
	EnvDatabaseURL      = "DATABASE_URL"
)

// ResolveDSN picks the database the mirror writes to: an explicit flag,
// then ALERT_DATABASE_URL, then DATABASE_URL. It also says where the DSN
// came from (for logs; never log the DSN, it may hold a password). An empty
// DSN means the mirror is off.
func ResolveDSN(flag string, getenv func(string) string) (dsn, from string) {
	if flag != "" {
		return flag, "--database-url"
	}
	for _, k := range []string{EnvAlertDatabaseURL, EnvDatabaseURL} {
		if v := getenv(k); v != "" {
			return v, k
		}
	}
	return "", ""
}
