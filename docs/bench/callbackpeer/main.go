// Command callbackpeer serves the peers of the durable inbox for the load
// test (callback-load.sh): the official-account callback written the way
// silenceper/wechat's README shows it (gin, officialAccount.GetServer(req,
// w), Serve(), Send()), on two ports:
//
//   - -sdk-addr: the handler stores nothing and answers at once;
//   - -gorm-addr: the same handler with a synchronous gorm INSERT of each
//     event (gorm's defaults: BEGIN, INSERT, COMMIT) before it answers, the
//     usual way to make a callback durable.
//
// Both take the same safe-mode requests as the service (callbacksign). The
// official account is made once at start (the README's example makes one
// per request, which only costs the peer more).
//
//	go run ./docs/bench/callbackpeer -dsn 'root@tcp(127.0.0.1:3306)/loyalty_load_peer' \
//	  -app-id wx00000000000a11ad -token loadtoken -aes-key <43 chars>
package main

import (
	"flag"
	"log"
	"net/http"
	_ "net/http/pprof" // on -debug-addr only: the servers use their own handlers
	"time"

	"github.com/gin-gonic/gin"
	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/officialaccount"
	offConfig "github.com/silenceper/wechat/v2/officialaccount/config"
	"github.com/silenceper/wechat/v2/officialaccount/message"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Event is the row the gorm peer stores per callback.
type Event struct {
	ID         uint64 `gorm:"primaryKey"`
	OpenID     string `gorm:"size:64;index"`
	MsgType    string `gorm:"size:32"`
	Event      string `gorm:"size:64"`
	EventKey   string `gorm:"size:255"`
	CreateTime int64
	CreatedAt  time.Time
}

func main() {
	sdkAddr := flag.String("sdk-addr", "127.0.0.1:18081", "listen address of the handler that stores nothing")
	gormAddr := flag.String("gorm-addr", "127.0.0.1:18082", "listen address of the handler with a gorm INSERT per event")
	debugAddr := flag.String("debug-addr", "", "serve Go's pprof profiles here (empty: not at all)")
	dsn := flag.String("dsn", "", "MySQL DSN of the gorm peer's database (empty: no gorm peer)")
	appID := flag.String("app-id", "", "AppID")
	token := flag.String("token", "", "callback token")
	aesKey := flag.String("aes-key", "", "EncodingAESKey (43 characters)")
	flag.Parse()
	if *appID == "" || *token == "" || len(*aesKey) != 43 {
		log.Fatal("-app-id, -token and -aes-key (43 characters) are required")
	}
	if *debugAddr != "" {
		go func() { log.Println(http.ListenAndServe(*debugAddr, nil)) }() // net/http/pprof's handlers
	}
	gin.SetMode(gin.ReleaseMode)
	// What wechat.NewWechat().GetOfficialAccount does, without importing
	// the SDK's payment packages.
	oa := officialaccount.NewOfficialAccount(&offConfig.Config{
		AppID: *appID, AppSecret: "unused", Token: *token, EncodingAESKey: *aesKey, Cache: cache.NewMemory(),
	})
	errs := make(chan error, 2)
	go func() { errs <- serve(*sdkAddr, handler(oa, nil)) }()
	if *dsn != "" {
		gdb, err := gorm.Open(mysql.Open(*dsn), &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)})
		if err != nil {
			log.Fatalf("open %s: %v", *dsn, err)
		}
		if err := gdb.AutoMigrate(&Event{}); err != nil {
			log.Fatalf("migrate: %v", err)
		}
		sqlDB, err := gdb.DB()
		if err != nil {
			log.Fatal(err)
		}
		sqlDB.SetMaxOpenConns(50) // the service's default pool size
		sqlDB.SetMaxIdleConns(50)
		store := func(msg *message.MixMessage) error {
			return gdb.Create(&Event{OpenID: string(msg.FromUserName), MsgType: string(msg.MsgType),
				Event: string(msg.Event), EventKey: msg.EventKey, CreateTime: msg.CreateTime}).Error
		}
		go func() { errs <- serve(*gormAddr, handler(oa, store)) }()
	}
	log.Fatal(<-errs)
}

func serve(addr string, h gin.HandlerFunc) error {
	r := gin.New()
	r.Use(gin.Recovery())
	r.Any("/wechat/callback", h)
	return http.ListenAndServe(addr, r)
}

// handler is the README's callback; store, when set, saves each message
// before the answer, and a failure answers 500 so WeChat retries.
func handler(oa *officialaccount.OfficialAccount, store func(*message.MixMessage) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		server := oa.GetServer(c.Request, c.Writer)
		var storeErr error
		server.SetMessageHandler(func(msg *message.MixMessage) *message.Reply {
			if store != nil {
				storeErr = store(msg)
			}
			return nil
		})
		if err := server.Serve(); err != nil {
			c.String(http.StatusForbidden, err.Error())
			return
		}
		if storeErr != nil {
			c.String(http.StatusInternalServerError, "temporarily unavailable")
			return
		}
		if err := server.Send(); err != nil {
			c.String(http.StatusInternalServerError, err.Error())
		}
	}
}
