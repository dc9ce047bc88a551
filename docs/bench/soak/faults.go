package main

import (
	"context"
	"fmt"
	"log"
	"syscall"
	"time"

	"github.com/wxloyalty/loyalty/wechat/wechattest"
)

// faultRecord is one fault: when it began and when it ended (the process
// serving again, or the simulator answering normally again).
type faultRecord struct {
	name         string
	began, ended time.Time
	err          error
}

const sendPath = "/cgi-bin/message/template/send"

// runFaults injects the faults on their schedule from start until ctx is
// done; a fault under way when it is done is still ended.
func (s *soak) runFaults(ctx context.Context, start time.Time) {
	type step struct {
		at   time.Duration
		name string
		do   func() error
	}
	w := s.o.faultWindow
	// Offsets in one cycle: the processes first, then the simulator. Rows
	// a killed instance, or a lost database write, left claimed or
	// sending wait out their 2-minute lease before another instance
	// takes them or settles them as unknown, so the short form kills
	// the processes at once and loads on while the leases run out.
	kill, db, rd, quota := 30*time.Second, 90*time.Second, 150*time.Second, 200*time.Second
	if s.o.duration < 3*time.Minute {
		kill, db, rd, quota = time.Second, 4*time.Second, 20*time.Second, 30*time.Second
	}
	var plan []step
	for c := 0; ; c++ {
		base := time.Duration(c) * s.o.cycle
		if base+quota+2*w+5*time.Second > s.o.duration {
			break
		}
		victim := s.instances[(c+1)%len(s.instances)]
		plan = append(plan, step{base + kill, "kill -9 " + victim.name, func() error { return s.restart(victim, syscall.SIGKILL) }})
		if s.mariadb != nil {
			plan = append(plan, step{base + db, "kill -9 mariadb", func() error { return s.restart(s.mariadb, syscall.SIGKILL) }})
		}
		plan = append(plan,
			step{base + rd, "kill -9 redis", func() error { return s.restart(s.redis, syscall.SIGKILL) }},
			step{base + quota, fmt.Sprintf("WeChat answers 45011 to sends for %v", w), func() error {
				s.sim.SetFault(sendPath, wechattest.Fault{ErrCode: 45011})
				time.Sleep(w)
				s.sim.ClearFault(sendPath)
				return nil
			}},
			step{base + quota + w + 5*time.Second, fmt.Sprintf("WeChat hangs on every call for %v", w), func() error {
				s.sim.SetFault("", wechattest.Fault{Hang: true})
				time.Sleep(w)
				s.sim.ClearFault("")
				return nil
			}})
	}
	for _, st := range plan {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(st.at))):
		}
		r := faultRecord{name: st.name, began: time.Now()}
		log.Printf("soak: fault: %s", st.name)
		r.err = st.do()
		r.ended = time.Now()
		if r.err != nil {
			log.Printf("soak: fault %s: %v", st.name, r.err)
		}
		s.faultsMu.Lock()
		s.faults = append(s.faults, r)
		s.faultsMu.Unlock()
	}
}

// restart kills d with sig, keeps it down for -down, and starts it again;
// it returns once d serves.
func (s *soak) restart(d *daemon, sig syscall.Signal) error {
	d.kill(sig)
	time.Sleep(s.o.downFor)
	return d.startReady(2 * time.Minute)
}
