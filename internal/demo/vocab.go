package demo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The shapes of the data: rough forms of a café-and-bakery chain's member
// base on WeChat, not measurements. Weights are relative.

// weighted picks items with relative weights.
type weighted[T any] struct {
	items []T
	cum   []float64 // cumulative weights, normalised to end at 1
}

func newWeighted[T any](items []T, weights []float64) *weighted[T] {
	w := &weighted[T]{items: items, cum: make([]float64, len(weights))}
	total := 0.0
	for i, x := range weights {
		total += x
		w.cum[i] = total
	}
	for i := range w.cum {
		w.cum[i] /= total
	}
	return w
}

func (w *weighted[T]) pick(r *rand.Rand) T {
	i, _ := slices.BinarySearch(w.cum, r.Float64())
	return w.items[min(i, len(w.items)-1)]
}

var (
	surnames = newWeighted(strings.Fields("王 李 张 刘 陈 杨 黄 赵 吴 周 徐 孙 马 朱 胡 郭 何 高 林 罗 郑 梁 谢 宋 唐 许 韩 冯 邓 曹 彭 曾 肖 田 董 袁 潘 于 蒋 蔡 余 杜 叶 程 苏 魏 吕 丁 任 沈 欧阳 司马"),
		[]float64{7.1, 7, 6.7, 5.4, 4.5, 3, 2.2, 2.2, 2, 1.9, 1.8, 1.5, 1.4, 1.3, 1.3, 1.2, 1.2, 1.1, 1.1, 1, 1, 0.9, 0.9, 0.9,
			0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.7, 0.6, 0.6, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.4,
			0.4, 0.4, 0.4, 0.4, 0.05, 0.03})
	givenChars = []rune("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红娥玲芬燕彬鹏辉俊晨宇浩然涵欣怡梓轩诺思远雨桐嘉佳琪诗梦瑶博文天佑若曦子")
	latinNames = []string{"Anna", "Leo", "Mia", "Tom", "Lily", "Jack", "Emma", "Max", "Coco", "Kevin"}
	phonePref  = strings.Fields("130 131 132 133 135 136 137 138 139 150 151 152 155 156 157 158 159 166 176 177 178 180 181 182 183 185 186 187 188 189 198 199")
	cities     = newWeighted(strings.Fields("上海 北京 广州 深圳 杭州 成都 南京 武汉 苏州 重庆 西安 天津 长沙 郑州 青岛 宁波 厦门 合肥 无锡 佛山 东莞 昆明 大连 沈阳 福州 济南 哈尔滨 贵阳 南宁 温州"),
		[]float64{18, 14, 9, 9, 8, 6, 5, 5, 4, 4, 3.5, 3, 3, 3, 2.5, 2.5, 2, 2, 2, 2, 2, 1.5, 1.5, 1.5, 1.5, 1.5, 1, 1, 1, 1})
	genders = newWeighted([]int{0, 1, 2}, []float64{20, 35, 45})
	sources = newWeighted([]string{"oa_follow", "mp_login", "oa_message", "oa_oauth"}, []float64{70, 15, 10, 5})

	// months of the year by order volume (Spring Festival, 618, golden
	// week, Double 11 and the year-end holidays), 1-based.
	monthWeight = [13]float64{0, 1.25, 1.15, 0.9, 0.9, 1.0, 1.3, 0.85, 0.85, 1.0, 1.1, 1.5, 1.35}
	// hours of the day (local) by order volume.
	hourWeights = newWeighted([]int{7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23},
		[]float64{2, 5, 6, 5, 6, 9, 8, 6, 7, 6, 6, 8, 9, 8, 5, 3, 1})
	refundReasons = []string{"质量问题", "不想要了", "少送/错送", "门店退款", "重复下单"}
)

// scenes are the acquisition channels (QR codes): a few busy ones (store
// counters, table cards) and a long tail (posters, events, staff codes).
var scenes = func() *weighted[string] {
	var items []string
	var weights []float64
	add := func(name string) {
		items = append(items, name)
		weights = append(weights, 1/math.Pow(float64(len(items)+1), 1.1))
	}
	for i := 1; i <= 40; i++ {
		add(fmt.Sprintf("store-%03d", i))
	}
	for _, s := range strings.Fields("mini-banner moments-ad-1 moments-ad-2 kol-xhs kol-douyin live-stream coupon-share receipt-qr") {
		add(s)
	}
	for i := 1; i <= 150; i++ {
		add(fmt.Sprintf("table-%03d", i))
	}
	for i := 1; i <= 60; i++ {
		add(fmt.Sprintf("poster-%02d", i))
	}
	for i := 1; i <= 50; i++ {
		add(fmt.Sprintf("staff-%03d", i))
	}
	// Shuffle the tail's weights a little so table cards are not strictly
	// ordered by number (a fixed permutation keeps runs deterministic).
	rng := rand.New(rand.NewPCG(1, 2))
	tail := weights[48:]
	rng.Shuffle(len(tail), func(i, j int) { tail[i], tail[j] = tail[j], tail[i] })
	return newWeighted(items, weights)
}()

// product is a catalogue item.
type product struct {
	sku, name, category string
	priceFen            int64
}

var catalogue = []product{
	{"C001", "美式咖啡", "咖啡", 2200}, {"C002", "拿铁", "咖啡", 2800}, {"C003", "燕麦拿铁", "咖啡", 3200},
	{"C004", "澳白", "咖啡", 3000}, {"C005", "冷萃", "咖啡", 3200}, {"C006", "咖啡豆 250g", "咖啡", 9800},
	{"T001", "茉莉绿茶", "茶饮", 1800}, {"T002", "乌龙奶茶", "茶饮", 2200}, {"T003", "柠檬红茶", "茶饮", 1900},
	{"B001", "可颂", "烘焙", 1600}, {"B002", "肉桂卷", "烘焙", 1800}, {"B003", "生日蛋糕 6 寸", "烘焙", 19800},
	{"B004", "欧包", "烘焙", 2400}, {"L001", "鸡肉三明治", "轻食", 3200}, {"L002", "沙拉碗", "轻食", 3800},
	{"S001", "坚果礼包", "零食", 6800}, {"S002", "手工饼干", "零食", 3600}, {"G001", "中秋礼盒", "礼盒", 29800},
	{"G002", "新年礼盒", "礼盒", 26800}, {"M001", "随行杯", "周边", 12800}, {"M002", "帆布袋", "周边", 5900},
}

// categories of the catalogue, and the products of each.
var (
	categories = []string{"咖啡", "茶饮", "烘焙", "轻食", "零食", "礼盒", "周边"}
	favourite  = newWeighted(categories, []float64{40, 20, 20, 8, 6, 3, 3})
	byCategory = func() map[string][]product {
		m := map[string][]product{}
		for _, p := range catalogue {
			m[p.category] = append(m[p.category], p)
		}
		return m
	}()
)

// tagDefs are the demo tags and the share of members holding each; "VIP"
// and "高价值" go mostly to big spenders instead (see assignTags).
var tagDefs = []struct {
	name, color string
	share       float64
}{
	{"VIP", "#d4a017", 0}, {"高价值", "#c0392b", 0}, {"咖啡爱好者", "#6f4e37", 0.22}, {"新品尝鲜", "#27ae60", 0.12},
	{"生日关怀", "#e67e22", 0.08}, {"团购", "#2980b9", 0.05}, {"沉睡唤醒", "#7f8c8d", 0.04}, {"会员日", "#8e44ad", 0.06},
	{"宝妈", "#e84393", 0.03}, {"学生", "#00b894", 0.04}, {"门店A", "#34495e", 0.02}, {"投诉处理", "#2d3436", 0.004},
}

// dayOfYear picks a month and day over a leap-year calendar, so 29
// February comes up about once in 366 picks.
func dayOfYear(r *rand.Rand) (int, int) {
	t := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.IntN(366))
	return int(t.Month()), t.Day()
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// yearFor picks a year in [lo, hi] that has the date (a leap year for 29
// February).
func yearFor(r *rand.Rand, lo, hi, month, day int) int {
	for {
		y := lo + r.IntN(hi-lo+1)
		if month != 2 || day != 29 || isLeap(y) {
			return y
		}
	}
}

// logNormal returns median × e^(σ·N(0,1)).
func logNormal(r *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}

// expDur returns an exponentially distributed duration with the mean.
func expDur(r *rand.Rand, mean time.Duration) time.Duration {
	return time.Duration(r.ExpFloat64() * float64(mean))
}
