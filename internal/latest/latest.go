// Package latest is a channel that keeps only its newest value: a writer
// never blocks, and a reader that falls behind gets the last value, not a
// backlog. The lock's renewals and the run loop's deadline both need that.
package latest

// Chan holds at most one value, the newest set.
type Chan[T any] struct{ c chan T }

// New returns an empty Chan.
func New[T any]() *Chan[T] { return &Chan[T]{c: make(chan T, 1)} }

// Set replaces the held value with v without blocking.
func (l *Chan[T]) Set(v T) {
	select {
	case <-l.c:
	default:
	}
	select {
	case l.c <- v:
	default: // another Set won the race; its value is as new
	}
}

// C receives the newest value once it is set.
func (l *Chan[T]) C() <-chan T { return l.c }
