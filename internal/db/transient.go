package db

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/uptrace/bun/driver/pgdriver"
)

// Transient reports whether err, returned by a database call, is one that
// the same call may not meet again in a moment: the connection was lost or
// refused, the statement timed out or was canceled, the transaction lost a
// serialization conflict or a deadlock, or the server is starting, shutting
// down or out of connections. Such a call is worth repeating (a whole
// transaction, from its start); any other error would come back the same.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var pgErr pgdriver.Error
	if errors.As(err, &pgErr) {
		code := pgErr.Field('C')
		switch code {
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"55P03", // lock_not_available (lock_timeout)
			"57014", // query_canceled (statement_timeout)
			"57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now
			"53300", // too_many_connections
			"25P03": // idle_in_transaction_session_timeout
			return true
		}
		return len(code) == 5 && code[:2] == "08" // connection_exception
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// UniqueViolation reports whether err is Postgres refusing a row that a
// unique index already holds.
func UniqueViolation(err error) bool {
	var pgErr pgdriver.Error
	return errors.As(err, &pgErr) && pgErr.Field('C') == "23505"
}
