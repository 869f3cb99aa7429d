package latest

import "testing"

func TestChanKeepsTheNewest(t *testing.T) {
	l := New[int]()
	select {
	case v := <-l.C():
		t.Fatalf("empty Chan gave %d", v)
	default:
	}
	for i := 1; i <= 3; i++ {
		l.Set(i) // never blocks, though nobody reads
	}
	if v := <-l.C(); v != 3 {
		t.Fatalf("got %d, want the newest, 3", v)
	}
	select {
	case v := <-l.C():
		t.Fatalf("a second value %d after the newest was read", v)
	default:
	}
}
