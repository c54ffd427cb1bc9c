// Package migrations embeds the SQL migrations. Every file is named
// NNNN_name.tx.up.sql / NNNN_name.tx.down.sql so that bun/migrate runs each
// inside one transaction; the down files exist for development only.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
