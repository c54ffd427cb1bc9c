package privacy

// What an export holds: one JSON file per category of data, each with the
// user's rows of a few tables. Rows are written as Postgres renders them
// (to_jsonb), so a column added to an exported table is exported without a
// change here; a table added to the schema that refers to a user must be
// added here or to exemptTables (TestEveryUserTableIsExportedOrExempt).

// exportFile is one JSON file of the ZIP: {"<table>": [rows…], …}.
type exportFile struct {
	Name   string
	Tables []exportTable
}

// exportTable is how the user's rows of one table are found.
type exportTable struct {
	// Name is the table in the database.
	Name string
	// From selects the user's rows under the alias t, e.g.
	// "sessions t WHERE t.user_id = ?0"; ?0 is the user's id. It must end
	// in a WHERE clause, to which the keyset condition is added.
	From string
	// Key are columns of t that order its rows uniquely: rows are read in
	// batches after the last key seen.
	Key []string
	// Omit are columns never exported: credentials (password and token
	// hashes) that would only help someone who stole the ZIP.
	Omit []string
	// Extra, when set, is a jsonb expression merged into each row, from the
	// other relations in From.
	Extra string
}

// exportFiles are the files of an export, in the order they are written.
var exportFiles = []exportFile{
	{"profile.json", []exportTable{
		{Name: "users", From: "users t WHERE t.id = ?0", Key: []string{"id"}, Omit: []string{"password_hash"}},
		{Name: "user_limits", From: "user_limits t WHERE t.user_id = ?0", Key: []string{"user_id"}},
	}},
	{"sessions_and_security.json", []exportTable{
		{Name: "sessions", From: "sessions t WHERE t.user_id = ?0", Key: []string{"id"}, Omit: []string{"token_hash"}},
		{Name: "security_events", From: "security_events t WHERE t.user_id = ?0", Key: []string{"id"}},
		{Name: "email_tokens", From: "email_tokens t WHERE t.user_id = ?0", Key: []string{"id"}, Omit: []string{"token_hash"}},
		{Name: "api_keys", From: "api_keys t WHERE t.user_id = ?0", Key: []string{"id"}, Omit: []string{"secret_hash"}},
	}},
	{"works.json", []exportTable{
		{Name: "works", From: "works t WHERE t.user_id = ?0", Key: []string{"id"}},
		{Name: "assets", From: "assets t WHERE t.user_id = ?0", Key: []string{"id"}},
		{Name: "uploads", From: "uploads t WHERE t.user_id = ?0", Key: []string{"id"}},
		{Name: "storage_usage", From: "storage_usage t WHERE t.user_id = ?0", Key: []string{"user_id"}},
	}},
	{"generations.json", []exportTable{
		{Name: "generations", From: "generations t WHERE t.user_id = ?0", Key: []string{"id"}},
		{Name: "generation_events", From: "generation_events t JOIN generations g ON g.id = t.generation_id WHERE g.user_id = ?0",
			Key: []string{"generation_id", "seq"}},
	}},
	{"credits.json", []exportTable{
		{Name: "credit_accounts", From: "credit_accounts t WHERE t.user_id = ?0", Key: []string{"user_id"}},
		{Name: "credit_lots", From: "credit_lots t WHERE t.user_id = ?0", Key: []string{"id"}},
		{Name: "credit_entries", From: "credit_entries t WHERE t.user_id = ?0", Key: []string{"id"}},
		{Name: "credit_holds", From: "credit_holds t WHERE t.user_id = ?0", Key: []string{"id"}},
	}},
	{"purchases_and_subscription.json", []exportTable{
		{Name: "purchases", From: "purchases t WHERE t.user_id = ?0", Key: []string{"id"}},
		{Name: "subscriptions", From: "subscriptions t WHERE t.user_id = ?0", Key: []string{"id"}},
		// Charges name no user: they are the user's through the purchases
		// they paid for.
		{Name: "stripe_charges", From: `stripe_charges t WHERE t.payment_intent_id IN (SELECT payment_intent_id FROM purchases WHERE user_id = ?0)
			OR t.invoice_id IN (SELECT invoice_id FROM purchases WHERE user_id = ?0)`, Key: []string{"id"}},
	}},
	{"privacy_requests.json", []exportTable{
		{Name: "privacy_requests", From: "privacy_requests t WHERE t.user_id = ?0", Key: []string{"id"}},
		{Name: "privacy_audit", From: "privacy_audit t JOIN privacy_requests r ON r.id = t.request_id WHERE r.user_id = ?0", Key: []string{"id"}},
	}},
	{"objections.json", []exportTable{
		{Name: "processing_objections", From: "processing_objections t WHERE t.user_id = ?0", Key: []string{"purpose"}},
	}},
	{"support_messages.json", []exportTable{
		{Name: "support_messages", From: "support_messages t WHERE t.user_id = ?0", Key: []string{"id"}},
	}},
	{"usage_events.json", []exportTable{
		{Name: "usage_events", From: "usage_events t WHERE t.user_id = ?0", Key: []string{"id"}},
	}},
	{"legal_documents.json", []exportTable{
		{Name: "legal_acceptances", From: "legal_acceptances t JOIN legal_documents d ON d.kind = t.kind AND d.version = t.version WHERE t.user_id = ?0",
			Key: []string{"kind", "version"}, Extra: "jsonb_build_object('effective_at', d.effective_at, 'url', d.url)"},
	}},
	{"export_downloads.json", []exportTable{
		{Name: "export_downloads", From: "export_downloads t WHERE t.user_id = ?0", Key: []string{"id"}},
	}},
	{"notifications.json", []exportTable{
		{Name: "viewer_events", From: "viewer_events t WHERE t.user_id = ?0", Key: []string{"seq"}},
	}},
	{"webhooks.json", []exportTable{
		{Name: "webhook_endpoints", From: "webhook_endpoints t WHERE t.user_id = ?0", Key: []string{"id"}, Omit: []string{"secret", "previous_secret"}},
		{Name: "webhook_deliveries", From: "webhook_deliveries t WHERE t.user_id = ?0", Key: []string{"id"}},
	}},
}

// exemptTables are tables that refer to a user, or hold an email address,
// and are not exported, with the reason.
var exemptTables = map[string]string{
	"webhook_user_secrets": "only the key that signs the user's per-request webhooks: a credential, shown in the API, " +
		"that would only help someone who stole the ZIP",
	"viewer_feeds": "only the number of the user's last feed entry; the entries themselves are in notifications.json",
	"mail_outbox": "the delivery queue of outgoing mail, keyed by address rather than by user: each message restates " +
		"a state exported elsewhere (a request, a purchase, a link), and delivered mail is forgotten by the maintenance task",
}
