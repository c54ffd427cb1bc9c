// Package drills holds the fault drills of the service: each starts the real
// fastimage binary (and, where it needs one, a private PostgreSQL, a fake
// object store or a fake Stripe), breaks something the way production
// breaks — a worker killed with SIGKILL, Postgres restarted under load,
// object storage answering 503, a client that stops reading, ten thousand
// idle subscriptions woken at once, Stripe webhooks delivered five times —
// and checks through the public protocols (GraphQL over HTTP and
// graphql-transport-ws) and the database that nothing was lost, reporting
// how long the service took to recover.
//
// The drills are the package's tests. `make test` runs them small (a few
// sockets, a short outage); `make drills` sets DRILLS_FULL=1 and runs them
// at full size, ending with a summary table of what each lost (it must be
// nothing) and how long recovery took.
package drills
