package clock

// dlist is an intrusive, ordered, doubly linked list. Waiters and callbacks
// are kept in FIFO order (never in a map) because the order in which they
// are woken or called is observable: the simulator's scheduler sees tasks
// become runnable in that order, and a run must replay identically from its
// seed. Removal is O(1) so that a Select can unregister from many lists
// cheaply. dlist is not safe for concurrent use; its owner's mutex guards it.
type dlist[T any] struct {
	head, tail *dnode[T]
	n          int
}

type dnode[T any] struct {
	v          T
	prev, next *dnode[T]
	list       *dlist[T]
}

// pushBack appends v and returns its node, the handle for remove.
func (l *dlist[T]) pushBack(v T) *dnode[T] {
	n := &dnode[T]{v: v, list: l, prev: l.tail}
	if l.tail != nil {
		l.tail.next = n
	} else {
		l.head = n
	}
	l.tail = n
	l.n++
	return n
}

// remove unlinks n and reports whether it was still in the list, so that a
// "stop" racing with a "fire" can tell which of the two won.
func (l *dlist[T]) remove(n *dnode[T]) bool {
	if n == nil || n.list != l {
		return false
	}
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next, n.list = nil, nil, nil
	l.n--
	return true
}

// front returns the first node, or nil if the list is empty.
func (l *dlist[T]) front() *dnode[T] { return l.head }

// len returns the number of nodes.
func (l *dlist[T]) len() int { return l.n }

// drain removes every node and returns the values in order.
func (l *dlist[T]) drain() []T {
	if l.n == 0 {
		return nil
	}
	out := make([]T, 0, l.n)
	for n := l.head; n != nil; {
		next := n.next
		out = append(out, n.v)
		n.prev, n.next, n.list = nil, nil, nil
		n = next
	}
	l.head, l.tail, l.n = nil, nil, 0
	return out
}

// wakeAll wakes every waiter in a list of waiters, in order, leaving them
// registered; each waiter unregisters itself when it stops waiting.
func wakeAll(l *dlist[Waiter]) {
	for n := l.head; n != nil; n = n.next {
		n.v.Wake()
	}
}
