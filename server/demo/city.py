"""A deterministic synthetic city for demos and benchmarks, realistic for Quzhou (衢州), Zhejiang.

Pure Python, no I/O: the caller stores what it gets. Every document is ready to store (it has its
`_id`) and validates against `schemas/`; persons also pass `rules.person_problems`, and every
household's room exists in its building (`rules.room_problems`).

    plan = plan_city(164_253)                 # the hierarchy only: small, computed in ~0.1 s
    write(plan.directory_docs)                # districts, streets, communities, grids, ...
    for grid in iter_grids(164_253):          # one grid's documents at a time (~1,100 persons)
        write(grid.code, grid.docs())

    city = generate_city(3_000)               # everything in memory: for small cities and tests

Hierarchy (directory database, `x-database: directory`):
- `district:{code}`  real GB/T 2260 codes: 柯城区 330802, 衢江区 330803, then 龙游县 330825,
  江山市 330881, 常山县 330822, 开化县 330824 as the city grows;
- `street:{code}`    9 digits = district + 3 (real street names, synthetic numbering);
- `community:{code}` 12 digits = street + 3;
- `grid:{code}`      `g` + community code + a letter: `g330802001001a` (200–600 households);
- `property_company:{code}` an 18-character unified social credit code (GB 32100-2015) whose
  organisation-code check character (GB 11714) and final check character are both correct;
- `compound:{code}`  a lowercase pinyin slug (`yangguang_huayuan`) with a Chinese name (阳光花园)
  and 1–2 aliases. A compound lies in exactly one grid.

Grid records (one database per grid, `x-database: grid`):
- `building:{compound}-{number}`   units "1".."4", 5–33 floors, 2–4 rooms per floor;
- `household:{code}`               code = community (12) + group (2) + serial (4), where the
  group is the compound's number within its community and the serial runs in address order;
- `person:{household code}-{n}`    n = 1 is the head (relationship "0");
- `household_visit:{household code}-{k}`, k = 1, 2, ... in date order;
- `census_household:{household code}-{CENSUS_CAMPAIGN}`;
- `screening:{household code}-{n}-{SCREENING_CAMPAIGN}` (the person's key, then the campaign).

Authors: the records of a grid are `created_by` its worker, `worker_name(grid)` = `w_{grid}`
(`w_g330802001001a`); buildings are `created_by` `admin`, as only admins and supervisors may
write buildings (`x-writers`).

Determinism: the plan draws from `random.Random` seeded with the seed and the size, each grid
from its own `random.Random` seeded with the seed and the grid's index. ID numbers are unique
across the whole city: `iter_grids` remembers the ones it issued (an int each, about 30 MB at
164,253 households), so a grid's documents depend on the grids before it only in the rare case
of a collision, and `iter_grids` must be run from the start to reproduce a grid.

Speed (2-core machine, CPython 3.11): the real scale, 164,253 households, is about 850,000
documents (450,000 persons) in 16–21 s, with a peak RSS of 77 MB when streamed.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from server.domain.rules import CHECK_CHARS, WEIGHTS

Doc = dict[str, Any]

TODAY = date(2026, 11, 26)
CENSUS_CAMPAIGN = "2026-census-pilot"
SCREENING_CAMPAIGN = "2026-screening"
BUILDING_AUTHOR = "admin"
MIN_GRID, MAX_GRID, TARGET_GRID = 200, 600, 400


class Weighted:
    """A weighted choice with its cumulative weights computed once (`random.choices` computes
    them on every call, which costs a third of the generation time)."""

    __slots__ = ("cum", "total", "values")

    def __init__(self, pairs: dict[Any, float]) -> None:
        self.values = tuple(pairs)
        self.cum = tuple(itertools.accumulate(pairs.values()))
        self.total = self.cum[-1]

    def __call__(self, rng: random.Random) -> Any:
        return self.values[bisect.bisect(self.cum, rng.random() * self.total)]


HOUSEHOLD_SIZE = Weighted({1: 18, 2: 30, 3: 27, 4: 13, 5: 8, 6: 4})  # mean 2.75
TENURE = Weighted({"owned": 70, "rented": 25, "other": 5})
SOURCE = Weighted({"public_security": 85, "street_office": 8, "grid_survey": 5, "resident": 2})
VEHICLES = Weighted({0: 40, 1: 45, 2: 13, 3: 2})
PETS = Weighted({0: 80, 1: 16, 2: 4})
HUKOU_LOCAL = Weighted({"non_agricultural": 70, "agricultural": 25, "other": 5})
HUKOU_MIGRANT = Weighted({"agricultural": 60, "non_agricultural": 35, "other": 5})
MARITAL_ADULT = Weighted({"1": 3, "2": 5, "3": 1, "4": 1})
MARITAL_SINGLE_MIDDLE = Weighted({"1": 3, "3": 5, "4": 2})
MARITAL_SINGLE_OLD = Weighted({"4": 75, "2": 10, "3": 7, "1": 8})
MARITAL_CARER = Weighted({"1": 4, "3": 3, "2": 3})
COMPOUNDS_PER_GRID = Weighted({1: 15, 2: 35, 3: 30, 4: 20})
OUTCOMES = Weighted({("completed",): 80, ("nobody_home", "completed"): 12, ("nobody_home",): 4,
                     ("refused",): 2, ("nobody_home", "nobody_home", "completed"): 2})
EDUCATION_STUDENT = Weighted({"4": 5, "5": 30, "6": 30, "7": 35})
# Highest education of adults by birth year (before 1950, 1965, 1980, 1995, and later).
_EDUCATION_YEARS = (1950, 1965, 1980, 1995)
EDUCATION_ADULT = tuple(Weighted(dict(zip("123456789", w, strict=True))) for w in (
    (22, 0, 40, 24, 10, 3, 1, 0, 0), (6, 0, 26, 38, 21, 6, 3, 0, 0),
    (1, 0, 10, 34, 28, 14, 11, 2, 0), (0, 0, 2, 18, 25, 25, 25, 4.5, 0.5),
    (0, 0, 1, 9, 20, 30, 33, 6, 1)))


def id_number_check(first17: str) -> str:
    """`rules.id_check_char`, computed on the bytes (three times faster)."""
    return CHECK_CHARS[(sum(map(operator.mul, first17.encode(), WEIGHTS)) - _ZERO_SUM) % 11]


_ZERO_SUM = 48 * sum(WEIGHTS)


def worker_name(grid: str) -> str:
    """The grid worker (网格员) who created a grid's records: `w_{grid code}`."""
    return f"w_{grid}"


# --------------------------------------------------------------------------------------------
# Places and names
# --------------------------------------------------------------------------------------------

# (code, name, registration place, streets: (name, community roots "name:pinyin"))
DISTRICTS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("330802", "柯城区", "浙江省衢州市柯城区", (
        ("府山街道", "坊门街:fangmenjie 县学街:xianxuejie 上营街:shangyingjie "
                     "下营街:xiayingjie 水亭街:shuitingjie 新桥街:xinqiaojie 北门街:beimenjie "
                     "天皇巷:tianhuangxiang 西安门:xianmen 蛟池街:jiaochijie"),
        ("荷花街道", "荷一:heyi 荷二:heer 荷三:hesan 荷四:hesi 荷五:hewu 紫荆:zijing "
                     "朝晖:zhaohui 通荷:tonghe 星火:xinghuo 城南:chengnan"),
        ("花园街道", "花园:huayuan 丹桂:dangui 芳桂:fanggui 紫薇:ziwei 万田:wantian "
                     "书院:shuyuan 柯山:keshan 百汇:baihui"),
        ("信安街道", "信安:xinan 新都:xindu 江滨:jiangbin 礼贤:lixian 文昌:wenchang "
                     "钟楼:zhonglou 府东:fudong"),
        ("双港街道", "双港:shuanggang 斗潭:doutan 新塘边:xintangbian 双水桥:shuangshuiqiao "
                     "杨家:yangjia 沙湾:shawan"),
        ("白云街道", "白云:baiyun 锦西:jinxi 锦东:jindong 月亮湾:yueliangwan 天宁:tianning "
                     "九华:jiuhua"),
        ("衢化街道", "衢化:quhua 巨化:juhua 兴化:xinghua 东方:dongfang 南苑:nanyuan "
                     "鹿鸣:luming"),
        ("新新街道", "新新:xinxin 樟树潭:zhangshutan 下张:xiazhang 石梁:shiliang "
                     "花园岗:huayuangang"),
    )),
    ("330803", "衢江区", "浙江省衢州市衢江区", (
        ("樟潭街道", "樟潭:zhangtan 樟树:zhangshu 江滨南:jiangbinnan 东迹:dongji 泥桥:niqiao"),
        ("浮石街道", "浮石:fushi 丰收:fengshou 滨江:binjiang 马山:mashan 东山:dongshan"),
        ("东港街道", "东港:donggang 信安湖:xinanhu 新城:xincheng 三衢:sanqu"),
        ("双桥街道", "双桥:shuangqiao 大路:dalu 廿里:nianli 莲花:lianhua"),
    )),
    ("330825", "龙游县", "浙江省衢州市龙游县", (
        ("龙洲街道", "龙洲:longzhou 太平:taiping 西门:ximen 东门:dongmen 南门:nanmen "
                     "荣昌:rongchang"),
        ("东华街道", "东华:donghua 兴龙:xinglong 龙山:longshan 翠光:cuiguang"),
    )),
    ("330881", "江山市", "浙江省江山市", (
        ("双塔街道", "双塔:shuangta 鹿溪:luxi 城北:chengbei 文溪:wenxi 景星:jingxing"),
        ("虎山街道", "虎山:hushan 莲华:lianhua 塔山:tashan 江东:jiangdong"),
        ("清湖街道", "清湖:qinghu 清漾:qingyang 航运:hangyun"),
    )),
    ("330822", "常山县", "浙江省衢州市常山县", (
        ("天马街道", "天马:tianma 文峰:wenfeng 定阳:dingyang 城东:chengdong"),
        ("紫港街道", "紫港:zigang 东案:dongan 芳村:fangcun"),
        ("金川街道", "金川:jinchuan 徐村:xucun 宋畈:songfan"),
    )),
    ("330824", "开化县", "浙江省衢州市开化县", (
        ("芹阳街道", "芹阳:qinyang 城关:chengguan 解放:jiefang 下溪:xiaxi"),
        ("华埠街道", "华埠:huabu 金星:jinxing 封家:fengjia"),
    )),
)

def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """"名:pinyin 名:pinyin ..." as ((名, pinyin), ...)."""
    return tuple((a, b) for a, _, b in (w.partition(":") for w in _words(text)))


# Two-character words with their pinyin, for compound names and for streets and communities
# beyond the lists above.
WORDS = _pairs(
    "阳光:yangguang 锦绣:jinxiu 翡翠:feicui 金都:jindu 丽景:lijing 香樟:xiangzhang "
    "桂花:guihua 梧桐:wutong 江滨:jiangbin 衢江:qujiang 烂柯:lanke 九华:jiuhua 东方:dongfang "
    "南湖:nanhu 北苑:beiyuan 府山:fushan 柯城:kecheng 白云:baiyun 荷花:hehua 万田:wantian "
    "书院:shuyuan 水亭:shuiting 天宁:tianning 礼贤:lixian 钟楼:zhonglou 春江:chunjiang "
    "盛世:shengshi 凯旋:kaixuan 新城:xincheng 世纪:shiji 滨江:binjiang 清风:qingfeng "
    "明珠:mingzhu 御景:yujing 和平:heping 文昌:wenchang 三衢:sanqu 双港:shuanggang "
    "新桥:xinqiao 红枫:hongfeng 金桥:jinqiao 兴华:xinghua 百汇:baihui 紫荆:zijing "
    "朝晖:zhaohui 丹桂:dangui 蓝天:lantian 碧水:bishui 怡和:yihe 康乐:kangle 安居:anju "
    "幸福:xingfu 振兴:zhenxing 信安:xinan 龙园:longyuan 鹿鸣:luming 锦园:jinyuan 月湖:yuehu "
    "东湖:donghu 学府:xuefu 天元:tianyuan 嘉禾:jiahe 金色:jinse 万象:wanxiang 天和:tianhe "
    "绿洲:lvzhou 新湖:xinhu 翠竹:cuizhu 兰亭:lanting 观澜:guanlan 映月:yingyue 枫林:fenglin "
    "清泉:qingquan 银杏:yinxing 樱花:yinghua 杏林:xinglin 荣华:ronghua 瑞祥:ruixiang "
    "泰和:taihe 景湖:jinghu 柳岸:liuan 龙腾:longteng 鸿基:hongji 港湾:gangwan 华庭:huating "
    "紫金:zijin 龙湖:longhu 江南:jiangnan 书香:shuxiang 文华:wenhua 崇文:chongwen "
    "西溪:xixi 常乐:changle 安康:ankang 金龙:jinlong 宏泰:hongtai 恒信:hengxin 丽阳:liyang")
OLD_SUFFIXES = _pairs(
    "一区:yiqu 二区:erqu 三区:sanqu 新村:xincun 小区:xiaoqu 公寓:gongyu 宿舍:sushe 苑:yuan "
    "坊:fang 里:li")
NEW_SUFFIXES = _pairs(
    "花园:huayuan 家园:jiayuan 华府:huafu 名苑:mingyuan 公馆:gongguan 雅苑:yayuan 城:cheng "
    "府:fu 湾:wan 国际:guoji 名城:mingcheng 华庭:huating 一品:yipin 御府:yufu")
# A direction after a taken name: 丽景东社区, 百汇北街道.
DIRECTIONS = _pairs("东:dong 西:xi 南:nan 北:bei 中:zhong 新:xin")
PHASES = (("二期", "2"), ("三期", "3"), ("北区", "bei"), ("南区", "nan"), ("东区", "dong"),
          ("西区", "xi"))
ROADS = _words(
    "新桥街 县学街 坊门街 上街 下街 衢化路 荷花中路 荷花东路 荷花西路 花园东大道 三衢路 府山路 "
    "白云中大道 世纪大道 西安路 浮石路 通荷路 兴华路 劳动路 书院路 信安大道 九华北大道 紫荆路 "
    "百汇路 巨化北路 江滨路 南湖路 丽水路 柯城路 礼贤路 双港路 斗潭路 文昌路 天宁路 凯旋路 "
    "人民路 解放路 东方大道 花园大道 江源路")
COMPANY_WORDS = ("信安", "衢江", "三衢", "烂柯", "府山", "九华", "安泰", "恒信", "宏达", "金鼎",
                 "嘉和", "华瑞", "盛世", "康居", "新安", "众安", "永和", "瑞丰", "鑫源", "宜居",
                 "中天", "天和", "金桥", "明珠", "通达", "和美", "荣昌", "润泽", "锦程", "红枫")
COMPANY_FORMS = ("衢州{}物业服务有限公司", "衢州市{}物业管理有限公司", "浙江{}物业服务有限公司",
                 "衢州{}物业有限公司")
CN_DIGITS = "〇一二三四五六七八九"
GRID_ORDINALS = ("一", "二", "三", "四", "五", "六", "七", "八", "九", "十")

# Surnames weighted for Quzhou (王陈徐 lead; 毛 of 江山, 祝, 汪, 郑, 余, 方 are common here).
SURNAMES, SURNAME_WEIGHTS = zip(*((s, float(w)) for s, w in _pairs(
        "王:7 陈:6 徐:5.5 张:5 李:5 吴:4 周:4 郑:3.5 刘:3.5 毛:3 汪:3 方:3 杨:3 黄:3 叶:3 "
        "余:3 祝:2.5 胡:2.5 朱:2.5 姜:2 金:2 程:2 林:2 何:2 郭:1.5 邵:1.5 孙:1.5 赵:1.5 "
        "马:1 罗:1 高:1 谢:1 钱:1 傅:1 韩:1 曹:1 童:1 饶:1 占:1 严:1 江:1 柴:1 范:1 蒋:1 "
        "潘:1 袁:1 许:1 夏:1 宋:1 唐:1 鲍:0.8 龚:0.8 诸葛:0.3 欧阳:0.2")), strict=True)
SURNAME_CUM = tuple(itertools.accumulate(SURNAME_WEIGHTS))

# Given names by birth cohort (before 1955, 1955-69, 1970-84, 1985-99, 2000-09, 2010-) and sex.
_COHORT_YEARS = (1955, 1970, 1985, 2000, 2010)
GIVEN = {
    "1": tuple(s.split() for s in (
        "建国 国华 德明 金土 根土 水生 荣昌 志刚 炳坤 福根 金林 长根 有福 文华 土根 金水 寿春 "
        "和平 振华 仁忠 德福 宝林 春生 炳荣 樟富 火根",
        "建华 国平 建平 卫东 志明 跃进 红卫 建军 国庆 永明 新华 胜利 卫国 海平 建新 志强 卫平 "
        "文斌 建忠 水根 国良 建林 根宝 雪松",
        "伟 勇 军 强 斌 涛 峰 刚 海波 志勇 晓东 国栋 伟华 建锋 小军 卫星 海军 立新 晓明 俊 杰 "
        "鹏 剑锋 国强 文军",
        "磊 超 浩 鹏 杰 俊 亮 帅 凯 宇 晨 浩然 俊杰 天宇 文博 家豪 志远 鹏飞 晓峰 子豪 佳豪 "
        "成龙 晨阳 嘉俊 骏",
        "宇航 浩宇 子豪 俊熙 梓豪 天佑 博文 宇轩 浩轩 家乐 俊豪 嘉伟 思远 天乐 明轩 一鸣 "
        "子杰 浩 宇 哲",
        "子轩 浩宇 梓睿 沐宸 宇辰 一诺 梓航 奕辰 皓轩 铭泽 俊熙 睿泽 子墨 煜祺 若凡 承泽 "
        "景行 锦程 辰 睿")),
    "2": tuple(s.split() for s in (
        "秀英 桂英 玉兰 秀兰 凤英 月娥 金花 美华 彩凤 玉珍 素珍 菊英 翠花 兰英 秀珍 小妹 "
        "月英 爱娟 巧英 雪娥 樟英 招娣",
        "美珍 红英 建英 丽华 秀芳 爱华 桂芳 小红 美英 卫红 红霞 彩霞 春燕 丽娟 玉芳 建芬 "
        "美兰 金凤 小芬 素芳",
        "丽 芳 燕 红 艳 敏 静 霞 娟 萍 丽华 海燕 晓燕 美玲 丽萍 雪芬 慧 琴 英 晓红 丽娜 "
        "小燕 素娟",
        "婷 倩 雪 丹 佳 琳 洁 颖 婷婷 丹丹 佳丽 倩倩 晓婷 梦婷 雅琴 思思 露 璐 莹 晶晶 雯 "
        "娜 佳慧 文静",
        "雨婷 佳琪 梦瑶 思雨 欣怡 雨欣 诗琪 佳怡 紫涵 梦琪 若曦 心怡 可欣 雅婷 晨曦 诗雨 "
        "佳颖 婧怡 悦",
        "梓涵 一诺 欣妍 语桐 诗涵 若汐 可馨 梓萱 子涵 依诺 语汐 芷晴 雨桐 沐瑶 婉清 安然 "
        "书瑶 思琪 悦溪 以沫")),
}

# Where an ID number's address code points (code, place); the grid's district comes first.
HOME_CODES = {code: place for code, _name, place, _streets in DISTRICTS}
OLD_QU_COUNTY = ("330821", "浙江省衢州市衢县")  # 衢县, renamed 衢江区 (330803) in 2001
OTHER_ORIGINS: tuple[tuple[str, str], ...] = (
    ("330702", "浙江省金华市婺城区"), ("330781", "浙江省兰溪市"), ("330782", "浙江省义乌市"),
    ("330106", "浙江省杭州市西湖区"), ("330302", "浙江省温州市鹿城区"),
    ("330602", "浙江省绍兴市越城区"), ("361102", "江西省上饶市信州区"),
    ("361181", "江西省德兴市"), ("360281", "江西省乐平市"), ("341021", "安徽省歙县"),
    ("341002", "安徽省黄山市屯溪区"), ("350702", "福建省南平市延平区"),
    ("510623", "四川省中江县"), ("411323", "河南省淅川县"), ("522121", "贵州省遵义市播州区"),
    ("432524", "湖南省新化县"),
)
ORIGIN_CITIES = ("杭州市", "上海市", "宁波市", "温州市", "金华市", "义乌市", "上饶市", "南京市",
                 "苏州市", "广州市", "深圳市", "北京市", "合肥市", "南昌市", "福州市", "武汉市")
MOBILE_PREFIXES = _words(
    "130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 173 175 "
    "176 177 180 181 182 183 185 186 187 188 189 191 198 199")
OCCUPATIONS = ("职员", "教师", "工人", "个体户", "医生", "护士", "司机", "销售", "公务员",
               "厨师", "快递员", "保安", "会计", "工程师", "自由职业", "外卖骑手", "服务员",
               "农民")
VISIT_NOTES = ("户主在家，信息已核实", "已更新联系电话", "租户在家，房东联系方式已登记",
               "老人独居，已登记关爱对象", "家中有新生儿，已补录", "子女在外地工作",
               "宣传了社区志愿服务", "反映楼道灯不亮，已转物业")
MINORITIES = ("22", "22", "22", "03", "08", "06", "15", "11")  # 畲族 first: Zhejiang's largest

# ISO 7064 weights and alphabets of the unified social credit code (GB 32100-2015) and of the
# organisation code inside it (GB 11714-1997).
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def credit_code(admin_code: str, org8: str) -> str:
    """A unified social credit code: "91" (industry and commerce, enterprise), the 6-digit
    administrative code, an 8-digit organisation code with its check character, and the final
    check character."""
    rest = 11 - sum(int(c) * w for c, w in zip(org8, ORG_WEIGHTS, strict=True)) % 11
    org = org8 + ("0" if rest == 11 else "X" if rest == 10 else str(rest))
    body = "91" + admin_code + org
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(body, USCC_WEIGHTS, strict=True))
    return body + USCC_CHARS[(31 - total % 31) % 31]


def credit_code_ok(code: str) -> bool:
    """Whether both check characters of a unified social credit code are right."""
    if len(code) != 18 or any(c not in USCC_CHARS for c in code):
        return False
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(code[:17], USCC_WEIGHTS, strict=True))
    if USCC_CHARS[(31 - total % 31) % 31] != code[17]:
        return False
    org = code[8:17]
    if not org[:8].isdigit():
        return True  # organisation codes with letters are not generated here
    rest = 11 - sum(int(c) * w for c, w in zip(org[:8], ORG_WEIGHTS, strict=True)) % 11
    return org[8] == ("0" if rest == 11 else "X" if rest == 10 else str(rest))


# --------------------------------------------------------------------------------------------
# The plan: hierarchy and directory documents
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CompoundPlan:
    code: str
    name: str
    kind: str  # "old": 5–7 storeys, no lift; "new": high-rise
    group: int  # its number within its community: the household code's 2-digit group


@dataclass(frozen=True)
class GridPlan:
    index: int
    code: str
    name: str
    households: int
    community: str
    street: str
    district: str
    compounds: tuple[CompoundPlan, ...]


@dataclass
class CityPlan:
    seed: int
    households: int
    today: date
    directory_docs: list[Doc]
    grids: list[GridPlan]


@dataclass
class GridDocs:
    """One grid's records, in the order a writer should store them."""

    code: str
    worker: str
    buildings: list[Doc] = field(default_factory=list)
    households: list[Doc] = field(default_factory=list)
    persons: list[Doc] = field(default_factory=list)
    visits: list[Doc] = field(default_factory=list)
    census: list[Doc] = field(default_factory=list)
    screenings: list[Doc] = field(default_factory=list)

    def docs(self) -> Iterator[Doc]:
        return itertools.chain(self.buildings, self.households, self.persons, self.visits,
                               self.census, self.screenings)

    def __len__(self) -> int:
        return (len(self.buildings) + len(self.households) + len(self.persons)
                + len(self.visits) + len(self.census) + len(self.screenings))


@dataclass
class City:
    """A whole city in memory: the directory's documents, and each grid's records by code."""

    seed: int
    today: date
    directory_docs: list[Doc]
    grids: dict[str, GridDocs]

    def docs(self) -> Iterator[Doc]:
        """Every document: the directory's, then grid by grid."""
        yield from self.directory_docs
        for grid in self.grids.values():
            yield from grid.docs()

    def count(self, kind: str) -> int:
        """How many `buildings`, `households`, `persons`, `visits`, `census` or `screenings`."""
        return sum(len(getattr(g, kind)) for g in self.grids.values())


def grid_sizes(households: int, rng: random.Random) -> list[int]:
    """Households per grid: 200–600 each (about 400), summing exactly to `households`. A city
    of fewer than 200 households is one grid."""
    if households < 1:
        raise ValueError("a city needs at least one household")
    if households < MIN_GRID:
        return [households]
    lo, hi = math.ceil(households / MAX_GRID), households // MIN_GRID
    count = min(max(round(households / TARGET_GRID), lo, 1), hi)
    weights = [rng.uniform(0.65, 1.35) for _ in range(count)]
    total = sum(weights)
    sizes = [min(MAX_GRID, max(MIN_GRID, round(households * w / total))) for w in weights]
    diff = households - sum(sizes)
    i = 0
    while diff:
        j = i % count
        if diff > 0 and sizes[j] < MAX_GRID:
            sizes[j] += 1
            diff -= 1
        elif diff < 0 and sizes[j] > MIN_GRID:
            sizes[j] -= 1
            diff += 1
        i += 1
    return sizes


def _split(total: int, rng: random.Random, choices: Sequence[int]) -> list[int]:
    """`total` things in consecutive groups whose sizes are drawn from `choices`."""
    parts: list[int] = []
    while total > 0:
        n = min(rng.choice(choices), total)
        parts.append(n)
        total -= n
    return parts


class _Names:
    """Unique names and codes for the plan."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.codes: set[str] = set()

    def take(self, name: str, code: str) -> bool:
        if name in self.names or code in self.codes:
            return False
        self.names.add(name)
        self.codes.add(code)
        return True


def _compound_name(rng: random.Random, kind: str, root: tuple[str, str],
                   used: _Names) -> tuple[str, str]:
    for attempt in range(60):
        use_root = kind == "old" and attempt < 3 and rng.random() < 0.4
        word = root if use_root else rng.choice(WORDS)
        suffix = rng.choice(OLD_SUFFIXES if kind == "old" else NEW_SUFFIXES)
        name, code = word[0] + suffix[0], f"{word[1]}_{suffix[1]}"
        if word[0][-1] != suffix[0][0] and used.take(name, code):  # not 新城城
            return name, code
    for n in itertools.count():  # every combination taken: a later phase of an existing one
        word = rng.choice(WORDS)
        suffix = rng.choice(NEW_SUFFIXES)
        phase = PHASES[n % len(PHASES)]
        tail = f"_{n // len(PHASES)}" if n >= len(PHASES) else ""
        name = word[0] + suffix[0] + phase[0] + (str(n // len(PHASES)) if tail else "")
        code = f"{word[1]}_{suffix[1]}_{phase[1]}{tail}"
        if used.take(name, code):
            return name, code
    raise AssertionError("unreachable")


def _digits_alias(name: str) -> str:
    return "".join(str(CN_DIGITS.index(c)) if c in CN_DIGITS[1:] else c for c in name)


def _aliases(rng: random.Random, name: str, address: str) -> list[str]:
    options = []
    if name.endswith("区") and name[-2:-1] in CN_DIGITS[1:]:
        options.append(_digits_alias(name))  # 荷花一区 → 荷花1区
    if not name.endswith(("小区", "新村", "宿舍")):
        options.append(name + "小区")
    options.append(address)
    rng.shuffle(options)
    return options[:rng.choice((1, 2))]


def plan_city(households: int, seed: int = 2020, today: date = TODAY) -> CityPlan:
    """The hierarchy of a city of `households` households and its directory documents, in the
    order to store them: districts, streets, communities, grids, property companies, compounds."""
    rng = random.Random(f"linli-city:{seed}:{households}:plan")
    sizes = grid_sizes(households, rng)
    created_at = f"{today - timedelta(days=320)}T09:00:00+08:00"
    used = _Names()
    for _, _, _, named_streets in DISTRICTS:
        used.names.update(street_name for street_name, _ in named_streets)
    districts: list[Doc] = []
    streets: list[Doc] = []
    communities: list[Doc] = []
    grids: list[Doc] = []
    compounds: list[Doc] = []
    grid_plans: list[GridPlan] = []

    community_grids = _split(len(sizes), rng, (2, 3, 3, 4, 4, 4, 5, 6))
    street_communities = _split(len(community_grids), rng, (5, 6, 7, 8, 9))
    # Streets fill 柯城区 first, then 衢江区, ...; past the named streets, more are made up.
    street_slots: list[tuple[int, str, list[tuple[str, str]]]] = []
    for d, (_, _, _, named) in enumerate(DISTRICTS):
        for street_name, roots in named:
            street_slots.append((d, street_name, [tuple(r.split(":")) for r in roots.split()]))
    street_numbers = [0] * len(DISTRICTS)
    grid_index = 0
    community_index = 0
    for s, n_communities in enumerate(street_communities):
        if s < len(street_slots):
            d, street_name, roots = street_slots[s]
        else:
            d, roots = s % len(DISTRICTS), []
            while True:
                word = rng.choice(WORDS)[0]
                if rng.random() < 0.2:
                    word += rng.choice(DIRECTIONS)[0]
                street_name = word + "街道"
                if street_name not in used.names:
                    used.names.add(street_name)
                    break
        district_code, district_name, _, _ = DISTRICTS[d]
        if street_numbers[d] == 0:
            districts.append({"_id": f"district:{district_code}", "type": "district",
                              "schema_version": 1, "code": district_code,
                              "name": district_name})
        street_numbers[d] += 1
        street_code = f"{district_code}{street_numbers[d]:03d}"
        streets.append({"_id": f"street:{street_code}", "type": "street", "schema_version": 1,
                        "code": street_code, "name": street_name, "district": district_code})
        for c in range(n_communities):
            n_grids = community_grids[community_index]
            community_index += 1
            root: tuple[str, str] | None = None
            while roots:
                candidate = roots.pop(0)
                if candidate[0] + "社区" not in used.names:
                    root = candidate
                    break
            while root is None:
                candidate = rng.choice(WORDS)
                if rng.random() < 0.3:
                    direction = rng.choice(DIRECTIONS)
                    candidate = (candidate[0] + direction[0], candidate[1] + direction[1])
                if candidate[0] + "社区" not in used.names:
                    root = candidate
            community_name = root[0] + "社区"
            used.names.add(community_name)
            community_code = f"{street_code}{c + 1:03d}"
            communities.append({"_id": f"community:{community_code}", "type": "community",
                                "schema_version": 1, "code": community_code,
                                "name": community_name, "street": street_code,
                                "district": district_code})
            group = 0
            for g in range(n_grids):
                size = sizes[grid_index]
                code = f"g{community_code}{chr(ord('a') + g)}"
                name = f"{community_name}第{GRID_ORDINALS[g]}网格"
                grids.append({"_id": f"grid:{code}", "type": "grid", "schema_version": 1,
                              "code": code, "name": name, "community": community_code,
                              "street": street_code, "district": district_code,
                              "created_at": created_at})
                # Smaller grids have fewer compounds; a compound holds at least ~60 households.
                n_compounds = max(1, min(size // 60, COMPOUNDS_PER_GRID(rng)))
                grid_compounds = []
                for _ in range(n_compounds):
                    group += 1
                    kind = "old" if rng.random() < 0.55 else "new"
                    cname, ccode = _compound_name(rng, kind, root, used)
                    grid_compounds.append(CompoundPlan(ccode, cname, kind, group))
                grid_plans.append(GridPlan(grid_index, code, name, size, community_code,
                                           street_code, district_code, tuple(grid_compounds)))
                grid_index += 1

    # Property companies: about one for every eight compounds, registered in the city's
    # districts; a few old compounds have none (self-managed).
    all_compounds = [(gp, c) for gp in grid_plans for c in gp.compounds]
    n_companies = max(2, len(all_compounds) // 8)
    companies: list[Doc] = []
    company_names: set[str] = set()
    for i in range(n_companies):
        while True:
            word = rng.choice(COMPANY_WORDS)
            name = rng.choice(COMPANY_FORMS).format(word)
            if name not in company_names:
                break
            if rng.random() < 0.3:
                name = rng.choice(COMPANY_FORMS).format(word + rng.choice(COMPANY_WORDS))
                if name not in company_names:
                    break
        company_names.add(name)
        admin_code = districts[i % len(districts)]["code"]
        org8 = f"{rng.randrange(10**7, 10**8)}"
        code = credit_code(admin_code, org8)
        companies.append({"_id": f"property_company:{code}", "type": "property_company",
                          "schema_version": 1, "code": code, "name": name,
                          "phone": f"0570-{rng.randrange(2_000_000, 9_000_000)}"})
    for gp, c in all_compounds:
        address = f"{rng.choice(ROADS)}{rng.randrange(1, 400)}号"
        doc: Doc = {"_id": f"compound:{c.code}", "type": "compound", "schema_version": 1,
                    "code": c.code, "name": c.name,
                    "aliases": _aliases(rng, c.name, address),
                    "community": gp.community, "address": address}
        if c.kind == "new" or rng.random() < 0.75:
            doc["property_company"] = rng.choice(companies)["_id"]
        compounds.append(doc)
    return CityPlan(seed, households, today,
                    districts + streets + communities + grids + companies + compounds,
                    grid_plans)


def directory_docs(households: int, seed: int = 2020, today: date = TODAY) -> list[Doc]:
    """The directory database's documents of `generate_city(households, seed)`."""
    return plan_city(households, seed, today).directory_docs


# --------------------------------------------------------------------------------------------
# Grids: buildings, households, persons and the work already done
# --------------------------------------------------------------------------------------------

class _Member:
    __slots__ = ("born", "code", "given", "id_number", "marital", "phone", "place", "rel",
                 "residence", "sex", "status", "surname")

    def __init__(self, rel: str, sex: str, age: float, surname: str, marital: str | None) -> None:
        self.rel, self.sex, self.surname, self.marital = rel, sex, surname, marital
        self.born = age  # an age in years until _Grid.person turns it into a date ordinal
        self.status = "present"
        self.residence = "consistent"
        self.phone: str | None = None


def _other(sex: str) -> str:
    return "2" if sex == "1" else "1"


class _Grid:
    """The generator of one grid's records."""

    def __init__(self, plan: GridPlan, seed: int, today: date, issued: set[int]) -> None:
        self.plan = plan
        self.rng = random.Random(f"linli-city:{seed}:grid:{plan.index}")
        self.today = today
        self.today_ord = today.toordinal()
        self.issued = issued
        self.worker = worker_name(plan.code)
        self.home_code = plan.district
        self.home_place = HOME_CODES[plan.district]
        self.out = GridDocs(plan.code, self.worker)
        self.visit_window = (self.today_ord - 260, self.today_ord - 1)
        self.census_window = (self.today_ord - 25, self.today_ord - 1)
        screening_start = self.today_ord - 200
        self.screening_window = (screening_start, screening_start + 14)

    # ---- small helpers -------------------------------------------------------------------

    def day(self, window: tuple[int, int]) -> int:
        return window[0] + int(self.rng.random() * (window[1] - window[0] + 1))

    def stamp(self, day: int) -> str:
        r = 8 * 3600 + 1800 + int(self.rng.random() * (10 * 3600 + 1800))
        return (f"{date.fromordinal(day).isoformat()}T{r // 3600:02d}:{r // 60 % 60:02d}:"
                f"{r % 60:02d}+08:00")

    def mobile(self) -> str:
        rng = self.rng
        return (MOBILE_PREFIXES[int(rng.random() * len(MOBILE_PREFIXES))]
                + f"{int(rng.random() * 100_000_000):08d}")

    def surname(self) -> str:
        return SURNAMES[bisect.bisect(SURNAME_CUM, self.rng.random() * SURNAME_CUM[-1])]

    def given(self, sex: str, year: int, compound_surname: bool) -> str:
        names = GIVEN[sex][bisect.bisect(_COHORT_YEARS, year)]
        name = names[int(self.rng.random() * len(names))]
        return name[0] if compound_surname else name

    # ---- buildings and rooms --------------------------------------------------------------

    def compound_rooms(self, compound: CompoundPlan, quota: int) -> list[tuple[str, str, str]]:
        """Make the compound's buildings and return `quota` occupied rooms, in address order."""
        rng = self.rng
        needed = math.ceil(quota / rng.uniform(0.82, 0.96))
        rooms: list[tuple[int, int, int, int]] = []  # building, unit, floor, index
        number = 0
        while len(rooms) < needed:
            number += 1
            if compound.kind == "old":
                floors = rng.choice((5, 6, 6, 6, 7))
                units, per_floor = rng.choice((2, 3, 3, 4)), 2
            else:
                floors = rng.choice((11, 11, 15, 17, 18, 18, 24, 26, 28, 30, 33))
                units, per_floor = rng.choice((1, 1, 2, 2, 2)), rng.choice((2, 2, 3, 4))
            self.out.buildings.append({
                "_id": f"building:{compound.code}-{number}", "type": "building",
                "schema_version": 1, "grid": self.plan.code, "created_by": BUILDING_AUTHOR,
                "compound": compound.code, "number": str(number),
                "units": [{"label": str(u), "floors": floors, "rooms_per_floor": per_floor}
                          for u in range(1, units + 1)]})
            rooms.extend((number, u, f, i) for u in range(1, units + 1)
                         for f in range(1, floors + 1) for i in range(1, per_floor + 1))
        chosen = sorted(rng.sample(range(len(rooms)), quota))
        return [(str(b), str(u), str(f * 100 + i)) for b, u, f, i in (rooms[k] for k in chosen)]

    # ---- families -------------------------------------------------------------------------

    def couple(self, husband_age: float, head_male: float = 0.78) -> tuple[float, float, str]:
        """(husband's age, wife's age, head's sex) of a married couple."""
        husband = max(22.2, husband_age)
        wife = max(20.2, husband - self.rng.triangular(-3, 8, 2))
        return husband, wife, "1" if self.rng.random() < head_male else "2"

    def family(self, size: int) -> list[_Member]:
        """Relationships, sexes, ages and surname roles of a family household's members."""
        rng = self.rng
        r = rng.random()
        head_surname, other_surname = self.surname(), self.surname()
        members: list[_Member] = []

        def add(rel: str, sex: str, age: float, surname: str, marital: str | None) -> None:
            members.append(_Member(rel, sex, min(age, 100.0), surname, marital))

        def add_couple(husband: float, wife: float, head_sex: str) -> str:
            """Head and spouse; returns the children's surname."""
            add("0", head_sex, husband if head_sex == "1" else wife, head_surname, "2")
            add("1", _other(head_sex), wife if head_sex == "1" else husband, other_surname, "2")
            father_is_head = head_sex == "1"
            if rng.random() < 0.92:
                return head_surname if father_is_head else other_surname
            return other_surname if father_is_head else head_surname

        def add_children(n: int, mother: float, surname: str, rel: str = "2",
                         first: float | None = None) -> None:
            """n children, the eldest born when the mother was 22-34 (or aged `first`)."""
            age = mother - rng.uniform(22, 34) if first is None else first
            for _ in range(n):
                if age < 0.05:
                    age = rng.uniform(0.05, 1.0)
                sex = "1" if rng.random() < 0.52 else "2"
                add(rel, sex, age, surname, "1" if age >= 22 else None)
                age -= rng.uniform(2, 8)

        def child_age() -> float:
            return rng.uniform(0.1, 22) if rng.random() < 0.8 else rng.uniform(22, 32)

        def add_parents(n: int, head_age: float, in_law: bool) -> None:
            father = min(head_age + rng.uniform(24, 34), 97.0)
            mother = max(head_age + 20, father - rng.triangular(-2, 7, 2))
            surname = other_surname if in_law else head_surname
            rel = "4" if in_law else "3"
            if n == 2:
                add(rel, "1", father, surname, "2")
                add(rel, "2", mother, self.surname(), "2")
            else:
                female = rng.random() < 0.7  # widows outlive widowers
                add(rel, "2" if female else "1", mother if female else father,
                    self.surname() if female else surname, "4")

        def nuclear(mother_from: float, mother_to: float, children: int,
                    parents: int = 0) -> None:
            """A couple, the wife aged mother_from-mother_to, their children and, if asked,
            one or two of their parents."""
            mother = rng.uniform(mother_from, mother_to)
            kids = add_couple(*self.couple(mother + rng.triangular(-3, 8, 2)))
            add_children(children, mother, kids)
            if parents:
                add_parents(parents, members[0].born, in_law=rng.random() < 0.3)

        def three_generations(grandchildren: int) -> None:
            """An older couple (the head), their married son or daughter and grandchildren."""
            g = rng.uniform(0.1, 14)
            young_mother = g + rng.uniform(23, 33)
            young_father, young_mother, _ = self.couple(young_mother + rng.triangular(-3, 8, 2))
            son = rng.random() < 0.8  # the married child is usually a son
            middle = young_father if son else young_mother
            husband, wife, head_sex = self.couple(
                middle + rng.uniform(24, 32) + (0 if son else 2))
            kids = add_couple(husband, wife, head_sex)
            add("2", "1" if son else "2", middle, kids, "2")
            add("6", "2" if son else "1", young_mother if son else young_father,
                self.surname(), "2")
            grand_surname = kids if son or rng.random() < 0.2 else self.surname()
            add_children(grandchildren, young_mother, grand_surname, "7")

        if size == 1:
            if r < 0.25:
                sex = "1" if rng.random() < 0.55 else "2"
                age = rng.uniform(20, 35)
                add("0", sex, age, head_surname,
                    "3" if age > 26 and rng.random() < 0.15 else "1")
            elif r < 0.5:
                sex = "1" if rng.random() < 0.5 else "2"
                add("0", sex, rng.uniform(35, 65), head_surname,
                    MARITAL_SINGLE_MIDDLE(rng))
            else:
                sex = "2" if rng.random() < 0.65 else "1"
                add("0", sex, rng.triangular(65, 96, 76), head_surname,
                    MARITAL_SINGLE_OLD(rng))
        elif size == 2:
            if r < 0.2:
                add_couple(*self.couple(rng.uniform(23, 36)))
            elif r < 0.75:
                add_couple(*self.couple(rng.triangular(48, 90, 64)))
            elif r < 0.9:
                child = child_age()
                parent = child + rng.uniform(23, 36)
                sex = "2" if rng.random() < 0.7 else "1"
                add("0", sex, max(parent, 24), head_surname, rng.choice(("3", "3", "4")))
                add("2", "1" if rng.random() < 0.52 else "2", child,
                    head_surname if sex == "1" or rng.random() < 0.3 else other_surname,
                    "1" if child >= 22 else None)
            else:
                parent = rng.uniform(68, 95)
                sex = "1" if rng.random() < 0.55 else "2"
                add("0", sex, parent - rng.uniform(24, 34), head_surname,
                    MARITAL_CARER(rng))
                female = rng.random() < 0.7
                add("3", "2" if female else "1", parent,
                    self.surname() if female else head_surname, "4")
        elif size == 3:
            if r < 0.82:
                c = child_age()
                mother = c + rng.uniform(22, 34)
                kids = add_couple(*self.couple(mother + rng.triangular(-3, 8, 2)))
                add_children(1, mother, kids, first=c)
            elif r < 0.94:
                husband, wife, head_sex = self.couple(rng.uniform(30, 60))
                add_couple(husband, wife, head_sex)
                add_parents(1, members[0].born, in_law=rng.random() < 0.3)
            else:
                mother = rng.uniform(32, 50)
                add("0", "2", mother, head_surname, rng.choice(("3", "4")))
                add_children(2, mother, other_surname if rng.random() < 0.6 else head_surname)
        elif size == 4:
            if r < 0.5:
                nuclear(30, 52, children=2)
            elif r < 0.85:
                nuclear(26, 50, children=1, parents=1)
            else:
                three_generations(0)
        elif size == 5:
            if r < 0.45:
                nuclear(26, 45, children=1, parents=2)
            elif r < 0.75:
                nuclear(30, 48, children=2, parents=1)
            else:
                three_generations(1)
        elif r < 0.5:
            nuclear(30, 45, children=2, parents=2)
        else:
            three_generations(2)
        return members

    def collective(self, size: int) -> list[_Member]:
        """A collective household (集体户, e.g. a staff dormitory): unrelated adults."""
        rng = self.rng
        members = []
        for n in range(size):
            age = rng.uniform(19, 55)
            marital = "1" if age < 26 else rng.choice(("1", "2", "2", "3"))
            members.append(_Member("0" if n == 0 else "9", "1" if rng.random() < 0.6 else "2",
                                   age, self.surname(), marital))
        return members

    # ---- persons --------------------------------------------------------------------------

    def id_number(self, code: str, born: int, sex: str) -> tuple[str, int]:
        """A valid, city-wide unique ID number; the birth date moves by a day in the (rare)
        case that every sequence number is taken."""
        rng = self.rng
        parity = 1 if sex == "1" else 0
        while True:
            d = date.fromordinal(born)
            stem = f"{code}{d.year:04d}{d.month:02d}{d.day:02d}"
            for _ in range(8):
                # The first two sequence digits name a police station; the third's parity is
                # the sex.
                seq = int(rng.random() * 100) * 10 + 2 * int(rng.random() * 5) + parity
                first17 = f"{stem}{seq:03d}"
                key = int(first17)
                if key not in self.issued:
                    self.issued.add(key)
                    return first17 + id_number_check(first17), born
            born -= 1

    def education(self, age: float, year: int) -> str | None:
        rng = self.rng
        if age < 3:
            return None
        if age < 6:
            return "2"
        if age < 12:
            return "3"
        if age < 15:
            return "4"
        if age < 18:
            return "5" if rng.random() < 0.9 else "4"
        if age < 22:
            return EDUCATION_STUDENT(rng)
        return EDUCATION_ADULT[bisect.bisect(_EDUCATION_YEARS, year)](rng)

    def employment(self, age: float, sex: str, education: str | None) -> str | None:
        rng = self.rng
        if age < 6:
            return None
        if age < 18:
            return "student"
        if age < 23 and education in ("6", "7") and rng.random() < 0.8:
            return "student"
        retire = 60 if sex == "1" else 55
        if age >= retire:
            return "retired" if rng.random() < 0.82 else "other"
        r = rng.random()
        return "employed" if r < 0.84 else "unemployed" if r < 0.89 else "other"

    def occupation(self, employment: str | None, age: float) -> str:
        if employment == "student":
            return "学生"
        if employment == "retired":
            return "退休"
        if employment == "employed":
            return self.rng.choice(OCCUPATIONS)
        if employment == "unemployed":
            return "待业"
        return "学龄前儿童" if age < 6 else "无"

    # ---- a household ----------------------------------------------------------------------

    def household(self, compound: CompoundPlan, room: tuple[str, str, str], code: str) -> None:
        rng = self.rng
        plan, out, worker = self.plan, self.out, self.worker
        hh_id = f"household:{code}"
        collective = rng.random() < 0.004
        size = HOUSEHOLD_SIZE(rng)
        members = self.collective(max(size, 2)) if collective else self.family(size)
        head = members[0]
        tenure = "other" if collective else TENURE(rng)
        r = rng.random()
        status = "active" if r < 0.965 else "vacant" if r < 0.985 else "moved_out"
        migrant = collective or (tenure == "rented" and rng.random() < 0.6)
        origin = rng.choice(OTHER_ORIGINS)

        # Birth dates, names, ID numbers, residence.
        for m in members:
            age = m.born
            born = self.today_ord - int(age * 365.2425) - 1
            if migrant:
                m.code, m.place, m.residence = origin[0], origin[1], "resident_not_registered"
                if collective:
                    origin = rng.choice(OTHER_ORIGINS)
            else:
                m.place = self.home_place
                r = rng.random()
                if r < 0.06 and m.rel in ("1", "4", "6"):
                    m.code, m.place = rng.choice(OTHER_ORIGINS)  # married in, hukou not moved
                    m.residence = "resident_not_registered"
                elif r < 0.12 and 18 <= age < 40 and m.rel in ("2", "8"):
                    m.code = self.home_code
                    m.residence = "registered_not_resident"  # studies or works elsewhere
                elif plan.district == "330803" and age > 26 and rng.random() < 0.6:
                    m.code = OLD_QU_COUNTY[0]  # born when 衢江区 was still 衢县
                elif rng.random() < 0.12:
                    m.code = rng.choice(tuple(HOME_CODES))  # born elsewhere in Quzhou
                else:
                    m.code = self.home_code
            if status == "vacant":
                m.residence = "registered_not_resident"
            elif status == "moved_out":
                m.status = "moved_out"
            m.id_number, m.born = self.id_number(m.code, born, m.sex)
            year = date.fromordinal(m.born).year
            m.given = self.given(m.sex, year, len(m.surname) > 1)
            if age >= 18 and rng.random() < (0.95 if age < 75 else 0.6):
                m.phone = self.mobile()
            if m.rel != "0" and age >= 80 and status == "active" and rng.random() < 0.02:
                m.status = "deceased"
        head_name = head.surname + head.given
        phone = head.phone or next((m.phone for m in members if m.phone), None) or self.mobile()

        source = SOURCE(rng)
        doc: Doc = {
            "_id": hh_id, "type": "household", "schema_version": 1, "grid": plan.code,
            "created_by": worker, "registry": {"source": source, "code": code},
            "address": {"compound": compound.code, "compound_name": compound.name,
                        "building": room[0], "unit": room[1], "room": room[2]},
            "head_name": head_name, "phone": phone,
            "household_type": "collective" if collective else "family", "tenure": tenure}
        area = None
        if tenure == "owned":
            area = round(rng.uniform(40, 100) if compound.kind == "old"
                         else rng.uniform(75, 180), 1)
            doc["area_m2"] = area
        special = []
        if len(members) == 1 and head.born <= self.today_ord - 65 * 365:
            special.append("elderly_alone")
        if rng.random() < 0.03:
            special.append("hardship")
        if rng.random() < 0.02:
            special.append("disability")
        if rng.random() < 0.04 or (
                any(m.born <= self.today_ord - 80 * 365 for m in members) and rng.random() < 0.3):
            special.append("health_needs")
        if special:
            doc["special_groups"] = special
        if rng.random() < 0.6:
            doc["vehicles"] = VEHICLES(rng)
            doc["pets"] = PETS(rng)
        doc["status"] = status
        out.households.append(doc)

        # Persons.
        persons: list[Doc] = []
        for n, m in enumerate(members, 1):
            b = date.fromordinal(m.born)
            age = (self.today_ord - m.born) / 365.2425
            p: Doc = {
                "_id": f"person:{code}-{n}", "type": "person", "schema_version": 1,
                "grid": plan.code, "created_by": worker, "household": hh_id,
                "name": m.surname + m.given, "relationship": m.rel, "sex": m.sex,
                "birth_year": b.year, "birth_month": b.month,
                "ethnicity": "01" if rng.random() < 0.993 else rng.choice(MINORITIES),
                "id_number": m.id_number}
            if m.phone:
                p["phone"] = m.phone
            p["registration_place"] = m.place
            p["residence_status"] = m.residence
            p["hukou_type"] = HUKOU_MIGRANT(rng) if migrant else HUKOU_LOCAL(rng)
            education = self.education(age, b.year)
            if education is not None:
                p["education"] = education
            if age >= 15:
                p["literate"] = education != "1" or rng.random() < 0.3
                p["marital_status"] = m.marital or ("1" if age < 28 else
                                                    MARITAL_ADULT(rng))
            employment = self.employment(age, m.sex, education)
            if employment is not None:
                p["employment"] = employment
            if age >= 16:
                p["social_insurance"] = rng.random() < 0.93
            p["status"] = m.status
            if m.residence == "registered_not_resident" and status == "active":
                p["remarks"] = rng.choice(("在杭州工作", "在上海工作", "外地上学", "在宁波工作"))
            persons.append(p)
        out.persons.extend(persons)

        # Work already done: visits (~60 %), the census pilot (~30 %), screenings (~15 %).
        if rng.random() < 0.6:
            if status == "moved_out":
                outcomes = ("moved",)
            elif status == "vacant":
                outcomes = rng.choice((("nobody_home",), ("nobody_home", "nobody_home")))
            else:
                outcomes = OUTCOMES(rng)
            day = self.day(self.visit_window)
            for k, outcome in enumerate(outcomes, 1):
                visit: Doc = {
                    "_id": f"household_visit:{code}-{k}", "type": "household_visit",
                    "schema_version": 1, "grid": plan.code, "created_by": worker,
                    "device_time": self.stamp(day), "household": hh_id,
                    "visited_on": date.fromordinal(day).isoformat(), "outcome": outcome}
                if outcome == "completed":
                    present = sum(1 for m in members if m.status == "present"
                                  and m.residence != "registered_not_resident")
                    visit["persons_present"] = rng.randint(1, max(1, present))
                    if rng.random() < 0.25:
                        visit["notes"] = rng.choice(VISIT_NOTES)
                out.visits.append(visit)
                day = min(day + rng.randint(1, 20), self.today_ord - 1)
        if status != "moved_out" and rng.random() < 0.3:
            day = self.day(self.census_window)
            year_ago = day - 365
            births = [m for m in members if year_ago < m.born <= day]
            census: Doc = {
                "_id": f"census_household:{code}-{CENSUS_CAMPAIGN}", "type": "census_household",
                "schema_version": 1, "grid": plan.code, "created_by": worker,
                "device_time": self.stamp(day), "household": hh_id,
                "campaign": CENSUS_CAMPAIGN, "enumerated_on": date.fromordinal(day).isoformat(),
                "household_type": doc["household_type"],
                "persons_registered": sum(1 for m in members if m.status == "present"),
                "births_male": sum(1 for m in births if m.sex == "1"),
                "births_female": sum(1 for m in births if m.sex == "2"),
                "deaths_male": 0, "deaths_female": 0,
                "dwelling_type": "2" if collective else "1"}
            floor_area = area or round(rng.uniform(35, 120), 1)
            census["floor_area_m2"] = floor_area
            census["rooms"] = max(1, min(6, round(floor_area / 30)))
            out.census.append(census)
        if status == "active" and rng.random() < 0.15:
            day = self.day(self.screening_window)
            for n, (m, p) in enumerate(zip(members, persons, strict=True), 1):
                if m.status != "present" or m.residence == "registered_not_resident":
                    continue
                out.screenings.append(self.screening(code, n, hh_id, m, p, day))

    def screening(self, code: str, n: int, hh_id: str, m: _Member, p: Doc, day: int) -> Doc:
        rng = self.rng
        age = (day - m.born) / 365.2425
        s: Doc = {
            "_id": f"screening:{code}-{n}-{SCREENING_CAMPAIGN}", "type": "screening",
            "schema_version": 1, "grid": self.plan.code, "created_by": self.worker,
            "device_time": self.stamp(day), "person": p["_id"], "household": hh_id,
            "campaign": SCREENING_CAMPAIGN, "screened_on": date.fromordinal(day).isoformat(),
            "occupation": self.occupation(p.get("employment"), age)}
        travelled = rng.random() < 0.08
        code_colour = "green"
        measures: list[str] = []
        if travelled:
            arrived = day - rng.randint(0, 13)
            origin = rng.choice(ORIGIN_CITIES)
            s["arrived_on"] = date.fromordinal(arrived).isoformat()
            s["origin"] = origin
            s["itinerary"] = f"{origin}→衢州"
            s["transport"] = rng.choice((
                f"G{rng.randint(1300, 7699)}次", "自驾", f"MU{rng.randint(5100, 9899)}",
                f"D{rng.randint(3100, 3299)}次"))
            if rng.random() < 0.2:
                code_colour = "yellow"
                measures.append("home_monitoring")
                s["monitoring_start"] = date.fromordinal(arrived).isoformat()
                s["monitoring_end"] = date.fromordinal(arrived + 7).isoformat()
        elif rng.random() < 0.004:
            code_colour = "red"
            measures.append("centralised_quarantine")
        s["contact_with_cases"] = ("none" if rng.random() < 0.985 else
                                   rng.choice(("suspected", "unknown", "confirmed")))
        if rng.random() < 0.006:
            temperature = round(rng.uniform(37.3, 38.6), 1)
            s["symptoms"] = ["fever", *rng.sample(("cough", "sore_throat", "fatigue"),
                                                   rng.randint(0, 2))]
            measures += ["referred_to_clinic", "test_arranged"]
        else:
            temperature = round(min(37.4, max(35.9, rng.gauss(36.5, 0.25))), 1)
        s["temperature"] = temperature
        r = rng.random()
        if r < 0.97:
            s["test_date"] = date.fromordinal(day - rng.randint(0, 3)).isoformat()
            s["test_result"] = "negative" if rng.random() < 0.985 else "pending"
        else:
            s["test_result"] = "not_tested"
        s["health_code"] = code_colour
        s["risk_category"] = {"green": "low", "yellow": "medium", "red": "high"}[code_colour]
        if measures:
            s["measures"] = measures
        return s

    def generate(self) -> GridDocs:
        rng = self.rng
        compounds = self.plan.compounds
        # Split the grid's households among its compounds (each at least a third of an equal
        # share), then fill each compound's rooms in address order.
        total = self.plan.households
        weights = [rng.uniform(0.5, 1.5) for _ in compounds]
        quotas = [int(total * w / sum(weights)) for w in weights]
        quotas[0] += total - sum(quotas)
        for compound, quota in zip(compounds, quotas, strict=True):
            community = self.plan.community
            for serial, room in enumerate(self.compound_rooms(compound, quota), 1):
                self.household(compound, room, f"{community}{compound.group:02d}{serial:04d}")
        return self.out


def iter_grids(households: int, seed: int = 2020, today: date = TODAY,
               plan: CityPlan | None = None) -> Iterator[GridDocs]:
    """Each grid's records of `generate_city(households, seed)`, one grid at a time, so a city
    at real scale (164,253 households, ~450,000 persons) never sits in memory at once."""
    plan = plan or plan_city(households, seed, today)
    issued: set[int] = set()
    for grid in plan.grids:
        yield _Grid(grid, seed, today, issued).generate()


def generate_city(households: int, seed: int = 2020, today: date = TODAY) -> City:
    """A whole city in memory; for large ones, stream `plan_city` and `iter_grids` instead."""
    plan = plan_city(households, seed, today)
    return City(seed, today, plan.directory_docs,
                {g.code: g for g in iter_grids(households, seed, today, plan)})
