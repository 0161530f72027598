/*
 * stamps.pml - the ring protocol with position stamps, checked exhaustively
 * by spin over every interleaving of the two ends' shared reads and writes
 * (ABI.md, "Position stamps"; ring.c).
 *
 *   spin -a stamps.pml && cc -O2 -DSAFETY -o pan pan.c && ./pan     (or run.sh)
 *
 * The ring is counted in 64-byte granules: CAP granules, free-running
 * positions, phys(x) = x % CAP. A slot is one granule of header and zero or
 * more of payload; a payload that fits the header's inline bytes is copied
 * there too. What a granule's bytes 24..31 hold is modelled as `stamp`:
 * the producer's stamp (position + 1; 0 means cleared) on a header, and,
 * on a payload granule, the worst value user data could put there: the
 * stamp that granule's position will have one lap later.
 *
 * The producer commits N messages of nondeterministic sizes, sometimes
 * rolling a reservation back first; it publishes head after a commit or
 * later (at least every BATCH commits, before it waits for room, and at
 * close), and sleeps on its wait word when the ring is full. The consumer
 * finds slots by their stamp or by head (either first, as try_peek and
 * try_peek_batch do), releases them at once or pins one for a while,
 * publishes tail by ring.c's rules (possibly ahead of head), and sleeps on
 * its wait word when the ring is empty. Both sleep protocols are modelled
 * without the watchdog timeouts, so a lost wake-up is a deadlock that spin
 * reports.
 *
 * Checked: every message arrives once, in order, whole (header, payload
 * granules or inline copy); nothing is read outside the ring or above what
 * the producer may have written; the producer's check of tail (never past
 * the committed head, never more than CAP in use) holds; and both ends
 * finish (no deadlock: valid end states), the consumer after the close.
 *
 * run.sh also checks four mutants, each of which must fail (so the model
 * can catch what it claims to): MUTANT_NO_CLEAR (the next stamp is not
 * cleared), MUTANT_STAMP_AT_RESERVE (a slot stamped before a rollback),
 * MUTANT_PUBLISHED_TAIL (the producer's old tail check, against the
 * published head), MUTANT_NO_WAKE (no wake after the tail is published).
 * (The SKIP is stamped after its slot, so a consumer never passes padding
 * before the slot after it is there; stamped the other way round the model
 * holds as well: the consumer then waits at the slot's position.)
 *
 * Sequential consistency: the release/acquire pairs of ring.c are ordered
 * stores and loads, which is what they guarantee for the data they publish;
 * the two sleep protocols are correct under SC because ring.c puts a full
 * fence between the announcement and the re-check on both sides.
 */

#define CAP    4      /* granules in the ring */
#define N      5      /* messages */
#define BATCH  2      /* publish head at least every BATCH commits */
#define SKIP   255    /* a header's size field: wrap padding */
#define NONE   254    /* header field never written */

/* per granule of the ring */
byte hsize[CAP];      /* header: payload granules, SKIP, or NONE */
byte hmsg[CAP];       /* header: message number (type_id) */
byte hinline[CAP];    /* header: the inline copy (message number), 0 if none */
byte pmsg[CAP];       /* payload granule: message number */
byte stamp[CAP];      /* bytes 24..31 */

byte head, tail;      /* published indices */
bit cwait, pwait;     /* wait words: 1 = sleeping */
bit closed;

/* stamps are named by position + 1; a payload granule at x holds the
 * stamp of x + CAP (the position one lap later) */
#define STAMP(x)   ((x) + 1)
#define PH(x)      ((x) % CAP)

proctype producer()
{
	byte p_head = 0, c_tail = 0;   /* committed head, cached tail */
	byte m = 1, unpub = 0, rs, pad, pos, i, t;
	bit rolled = 0;

	do
	:: m > N -> break
	:: else ->
		/* reserve: a slot of 1 or 2 granules; a 1-granule slot has an
		 * empty payload, a 2-granule one a small (inline) or larger one */
		if
		:: rs = 1
		:: rs = 2
		fi;
		pad = 0;
		if
		:: rs > CAP - PH(p_head) -> pad = CAP - PH(p_head)
		:: else -> skip
		fi;
		/* wait for room */
		do
		:: p_head - c_tail + pad + rs <= CAP -> break
		:: else ->
			t = tail;
#ifdef MUTANT_PUBLISHED_TAIL
			assert(t >= c_tail && t <= head);
#else
			assert(t >= c_tail && t <= p_head);   /* never past the committed head */
#endif
			assert(p_head - t <= CAP);
			c_tail = t;
			if
			:: p_head - c_tail + pad + rs <= CAP -> skip
			:: else ->
				/* no room: publish, wake a sleeping consumer, then sleep */
				head = p_head; unpub = 0;
				atomic { if :: cwait -> cwait = 0 :: else -> skip fi };
				pwait = 1;
				if
				:: tail != c_tail -> pwait = 0   /* the re-check after announcing */
				:: else -> (pwait == 0)          /* woken by the consumer */
				fi
			fi
		od;
		if
		:: !rolled ->
			/* roll the reservation back: nothing was written */
#ifdef MUTANT_STAMP_AT_RESERVE
			hsize[PH(p_head + pad)] = rs - 1;
			hmsg[PH(p_head + pad)] = m;
			hinline[PH(p_head + pad)] = m;
			stamp[PH(p_head + pad)] = STAMP(p_head + pad);
#endif
			rolled = 1
		:: true ->
			rolled = 0;
			pos = p_head + pad;
			/* payload granules, their bytes 24..31 the worst user data */
			for (i : 1 .. rs - 1) {
				pmsg[PH(pos + i)] = m;
				stamp[PH(pos + i)] = STAMP(pos + i + CAP)
			}
			hsize[PH(pos)] = rs - 1;
			hmsg[PH(pos)] = m;
			if
			:: rs == 2 -> hinline[PH(pos)] = m   /* a small payload */
			:: rs == 2 -> hinline[PH(pos)] = 0   /* a larger one: no inline copy */
			:: rs == 1 -> hinline[PH(pos)] = m
			fi;
			/* clear the stamp where the consumer looks next, if free room */
#ifndef MUTANT_NO_CLEAR
			if
			:: pos + rs != c_tail + CAP -> stamp[PH(pos + rs)] = 0
			:: else -> skip
			fi;
#endif
			stamp[PH(pos)] = STAMP(pos);
			if
			:: pad > 0 ->
				hsize[PH(p_head)] = SKIP;
				stamp[PH(p_head)] = STAMP(p_head)
			:: else -> skip
			fi;
			p_head = pos + rs;
			m++;
			unpub++;
			/* publish now or later */
			if
			:: unpub >= BATCH -> head = p_head; unpub = 0;
				atomic { if :: cwait -> cwait = 0 :: else -> skip fi }
			:: unpub < BATCH -> skip
			:: unpub < BATCH -> head = p_head; unpub = 0;
				atomic { if :: cwait -> cwait = 0 :: else -> skip fi }
			fi
		fi
	od;
	/* close: publish, then the state, then the wake check */
	head = p_head;
	closed = 1;
	atomic { if :: cwait -> cwait = 0 :: else -> skip fi }
}

proctype consumer()
{
	byte read = 0, release = 0, ptail = 0, chead = 0;
	byte expect = 1, h, sz, off, pinned_end = 0;
	bit pinned = 0, seen_closed = 0, found, done = 0, stamp_first;

	do
	:: done -> break
	:: !done ->
		found = 0;
		off = PH(read);
		if
		:: chead > read ->
			/* a header below the head seen */
			sz = hsize[off];
			if
			:: sz == SKIP ->
				assert(off != 0 && CAP - off <= chead - read);
				if :: release == read -> release = read + CAP - off :: else -> skip fi;
				read = read + CAP - off
			:: else ->
				assert(sz != NONE && sz + 1 <= CAP - off && sz + 1 <= chead - read);
				found = 1
			fi
		:: else ->
			/* nothing published beyond read: the stamp first (try_peek)
			 * or head first (try_peek_batch) */
			if
			:: stamp_first = 1
			:: stamp_first = 0
			fi;
			if
			:: !stamp_first ->
				h = head;
				assert(h >= chead && h <= ptail + CAP);   /* the head checks */
				chead = h
			:: else -> skip
			fi;
			if
			:: chead > read -> skip   /* head moved: take it by head */
			:: else ->
				if
				:: ptail + CAP > read && stamp[off] == STAMP(read) ->
					sz = hsize[off];
					if
					:: sz == SKIP ->
						assert(off != 0 && CAP - off <= ptail + CAP - read);
						if :: release == read -> release = read + CAP - off :: else -> skip fi;
						read = read + CAP - off
					:: else ->
						assert(sz != NONE && sz + 1 <= CAP - off && sz + 1 <= ptail + CAP - read);
						found = 1
					fi
				:: else ->
					h = head;
					assert(h >= chead && h <= ptail + CAP);
					chead = h;
					if
					:: h > read -> skip
					:: else ->
						/* empty. A slot still pinned is let go first: a
						 * caller that waits for the next message while it
						 * holds the last one in a full ring waits on itself */
						if
						:: pinned -> release = pinned_end; pinned = 0
						:: else -> skip
						fi;
						/* publish what was released, then the state */
						if
						:: release != ptail -> tail = release; ptail = release;
#ifndef MUTANT_NO_WAKE
							atomic { if :: pwait -> pwait = 0 :: else -> skip fi }
#endif
						:: else -> skip
						fi;
						if
						:: seen_closed -> done = 1
						:: !seen_closed && closed -> seen_closed = 1   /* head once more */
						:: !seen_closed && !closed ->
							/* sleep: announce, look once more, wait for the wake */
							cwait = 1;
							if
							:: ptail + CAP > read && stamp[off] == STAMP(read) -> cwait = 0
							:: head > read -> cwait = 0
							:: closed -> cwait = 0
							:: else -> (cwait == 0)
							fi
						fi
					fi
				fi
			fi
		fi;
		if
		:: found ->
			/* the message: its number, and its payload whole */
			assert(hmsg[off] == expect);
			if
			:: sz == 0 -> skip
			:: sz == 1 && hinline[off] != 0 -> assert(hinline[off] == expect)
			:: sz == 1 && hinline[off] == 0 -> assert(pmsg[PH(read + 1)] == expect)
			fi;
			expect++;
			read = read + sz + 1;
			/* release at once, or pin it until the next message */
			if
			:: pinned -> release = pinned_end; pinned = 0
			:: else -> skip
			fi;
			if
			:: release = read
			:: pinned_end = read; pinned = 1
			fi;
			/* publish tail or not: a free choice covers ring.c's rules */
			if
			:: release != ptail -> tail = release; ptail = release;
#ifndef MUTANT_NO_WAKE
				atomic { if :: pwait -> pwait = 0 :: else -> skip fi }
#endif
			:: skip
			fi
		:: else -> skip
		fi
	od;
	assert(expect == N + 1);   /* everything arrived before the close */
}

init {
	byte i;
	for (i : 0 .. CAP - 1) {
		hsize[i] = NONE;
		stamp[i] = 0
	}
	atomic { run producer(); run consumer() }
}
