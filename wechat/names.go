package wechat

// apiNames are our names of the WeChat calls: APIError.API, and the api
// label of the call metrics, which must come from a closed set. A new call
// in account.go needs its name here (TestEveryCallNameIsKnown checks).
var apiNames = map[string]bool{
	"oa.token": true, "mp.token": true,
	"template.send": true, "template.list": true,
	"oa_subscribe.send": true, "mp_subscribe.send": true, "mp_subscribe.templates": true,
	"custom.send": true, "user.info": true, "qrcode.create": true,
	"mp.code2session": true, "mp.phone_number": true, "oauth.access_token": true, "oauth.userinfo": true,
}

// KnownAPI reports whether name is one of our WeChat call names.
func KnownAPI(name string) bool { return apiNames[name] }

// KnownCode reports whether code is an errcode this package knows by name
// (it has a kind or a description), or 0. Anything else WeChat, or whatever
// answers at its address, may send is not a closed set.
func KnownCode(code int) bool {
	_, kind := codeKinds[code]
	_, described := codeDescriptions[code]
	return code == 0 || kind || described
}
