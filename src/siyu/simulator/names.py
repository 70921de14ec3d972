"""Word lists for realistic Chinese corp data: names with pinyin (for userids), departments, tags."""

from __future__ import annotations

import itertools
import random

# The most common surnames in China, roughly by frequency (so weighted picks look natural).
SURNAMES: list[tuple[str, str]] = [
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
    ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("高", "gao"),
    ("林", "lin"), ("罗", "luo"), ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"),
    ("唐", "tang"), ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
    ("彭", "peng"), ("曾", "zeng"), ("肖", "xiao"), ("田", "tian"), ("董", "dong"), ("袁", "yuan"),
    ("潘", "pan"), ("于", "yu"), ("蒋", "jiang"), ("蔡", "cai"), ("余", "yu"), ("杜", "du"),
    ("叶", "ye"), ("程", "cheng"), ("苏", "su"), ("魏", "wei"), ("吕", "lv"), ("丁", "ding"),
    ("任", "ren"), ("沈", "shen"), ("姚", "yao"), ("卢", "lu"), ("姜", "jiang"), ("崔", "cui"),
    ("钟", "zhong"), ("谭", "tan"), ("陆", "lu"), ("汪", "wang"), ("范", "fan"), ("金", "jin"),
    ("石", "shi"), ("廖", "liao"), ("贾", "jia"), ("夏", "xia"), ("韦", "wei"), ("方", "fang"),
    ("白", "bai"), ("邹", "zou"), ("孟", "meng"), ("熊", "xiong"), ("秦", "qin"), ("邱", "qiu"),
]  # fmt: skip
SURNAME_CUM_WEIGHTS = list(itertools.accumulate(max(1.0, 10.0 - i * 0.15) for i in range(len(SURNAMES))))

GIVEN_MALE: list[tuple[str, str]] = [
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"),
    ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("刚", "gang"), ("平", "ping"),
    ("辉", "hui"), ("鹏", "peng"), ("华", "hua"), ("飞", "fei"), ("鑫", "xin"), ("波", "bo"),
    ("斌", "bin"), ("宇", "yu"), ("浩", "hao"), ("凯", "kai"), ("健", "jian"), ("俊", "jun"),
    ("帆", "fan"), ("帅", "shuai"), ("旭", "xu"), ("宁", "ning"), ("龙", "long"), ("林", "lin"),
    ("晨", "chen"), ("博", "bo"), ("文", "wen"), ("志", "zhi"), ("建", "jian"), ("国", "guo"),
    ("子", "zi"), ("轩", "xuan"), ("睿", "rui"), ("泽", "ze"), ("思", "si"), ("远", "yuan"),
]  # fmt: skip
GIVEN_FEMALE: list[tuple[str, str]] = [
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("艳", "yan"),
    ("娟", "juan"), ("霞", "xia"), ("秀", "xiu"), ("婷", "ting"), ("雪", "xue"), ("慧", "hui"),
    ("玲", "ling"), ("燕", "yan"), ("倩", "qian"), ("琳", "lin"), ("颖", "ying"), ("欣", "xin"),
    ("佳", "jia"), ("怡", "yi"), ("萍", "ping"), ("红", "hong"), ("梅", "mei"), ("莉", "li"),
    ("晶", "jing"), ("丹", "dan"), ("琪", "qi"), ("璐", "lu"), ("雨", "yu"), ("萱", "xuan"),
    ("梓", "zi"), ("涵", "han"), ("诗", "shi"), ("悦", "yue"), ("瑶", "yao"), ("妍", "yan"),
]  # fmt: skip

# WeChat nicknames are often not names at all.
NICKNAMES = [
    "小鱼儿", "阳光总在风雨后", "简单", "Lucky", "A-May", "追梦人", "静待花开", "木子", "安然", "Tommy",
    "晴天", "一路向北", "大白", "Coco", "初心", "小确幸", "天道酬勤", "Jason", "清风徐来", "番茄炒蛋",
    "Vivian", "岁月静好", "平安喜乐", "老张", "Kevin", "糖糖", "浅笑", "Mia", "向日葵", "海阔天空",
]  # fmt: skip

COMPANIES = [
    ("腾讯", "深圳市腾讯计算机系统有限公司"), ("华为", "华为技术有限公司"),
    ("美团", "北京三快在线科技有限公司"), ("京东", "北京京东世纪贸易有限公司"),
    ("小米", "小米科技有限责任公司"), ("比亚迪", "比亚迪股份有限公司"),
    ("万科", "万科企业股份有限公司"), ("顺丰", "顺丰速运有限公司"),
    ("格力", "珠海格力电器股份有限公司"), ("海尔", "海尔集团公司"),
    ("蔚来", "上海蔚来汽车有限公司"), ("网易", "网易(杭州)网络有限公司"),
]  # fmt: skip

POSITIONS = ["销售经理", "客户经理", "客服专员", "销售顾问", "大客户经理", "运营专员", "店长", "区域经理"]
CUSTOMER_POSITIONS = ["采购经理", "总经理", "Manager", "工程师", "行政主管", "财务", "设计师", "店主"]

# Department tree: (name, name_en, parent index in this list or None for the root's children).
DEPARTMENTS: list[tuple[str, str, int | None]] = [
    ("销售中心", "Sales", None),
    ("华东大区", "East", 0),
    ("华南大区", "South", 0),
    ("华北大区", "North", 0),
    ("西南大区", "Southwest", 0),
    ("客户成功部", "Customer Success", None),
    ("市场部", "Marketing", None),
    ("门店运营部", "Stores", None),
]

# Corp tag groups with their tags, as a retail/education SCRM would set them up.
TAG_GROUPS: list[tuple[str, list[str]]] = [
    ("客户等级", ["A类客户", "B类客户", "C类客户", "D类客户"]),
    ("客户来源", ["线上广告", "线下活动", "老客转介绍", "展会", "官网咨询"]),
    ("意向产品", ["基础版", "专业版", "企业版", "定制服务"]),
    ("客户阶段", ["初次接触", "需求确认", "方案报价", "已成交", "已流失"]),
    ("兴趣偏好", ["价格敏感", "注重品质", "喜欢新品", "关注售后"]),
]

# 「联系我」 channels: (remark, state) — the state is what attributes an add to its channel.
CHANNELS: list[tuple[str, str]] = [
    ("官网首页客服", "web-home"),
    ("抖音广告投放", "douyin-ad-0612"),
    ("公众号菜单", "mp-menu"),
    ("北京朝阳门店", "store-bj-cy"),
    ("上海静安门店", "store-sh-ja"),
    ("2024广交会展位", "expo-canton-2024"),
    ("小红书笔记", "xhs-note"),
    ("老客转介绍海报", "referral-poster"),
]

GROUP_NAMES = [
    "VIP客户交流群", "新品体验官", "{city}会员福利群", "售后服务群", "{city}门店粉丝群", "产品答疑群",
    "企业版客户群", "活动通知群", "{city}老友会", "团购福利群",
]  # fmt: skip
CITIES = ["北京", "上海", "广州", "深圳", "杭州", "成都", "南京", "武汉", "西安", "苏州"]
GROUP_NOTICES = ["文明沟通，拒绝广告", "每周五晚8点福利发放", "有问题请@群主", ""]

REMARK_SUFFIXES = ["", "", "", "总", "经理", "老师", "女士", "先生"]
DESCRIPTIONS = ["", "", "对接采购事务", "意向较强", "价格敏感，需跟进", "老客户", "展会认识", "需要报价"]


def person_name(rng: random.Random, *, gender: int | None = None) -> tuple[str, str, int]:
    """A Chinese full name, its pinyin (for a userid) and the gender (1 male, 2 female)."""
    surname, surname_py = rng.choices(SURNAMES, cum_weights=SURNAME_CUM_WEIGHTS)[0]
    gender = gender or rng.choice((1, 2))
    pool = GIVEN_MALE if gender == 1 else GIVEN_FEMALE
    parts = [rng.choice(pool) for _ in range(rng.choice((1, 1, 2)))]
    name = surname + "".join(p[0] for p in parts)
    pinyin = surname_py + "".join(p[1] for p in parts)
    return name, pinyin, gender


def customer_name(rng: random.Random) -> tuple[str, int]:
    """A WeChat display name (a real name most of the time, a nickname sometimes) and a gender (0 unknown)."""
    if rng.random() < 0.25:
        return rng.choice(NICKNAMES), rng.choice((0, 1, 2))
    name, _pinyin, gender = person_name(rng)
    return name, gender
