"""Writes the sample multilingual corpus (BEIR layout) used by the demo, tests and benchmarks.

600 short passages about 20 capital cities in 6 languages (English, German, Spanish,
Russian, Japanese, Arabic), written for this project from five sentence patterns per
language; 120 queries (one per city and language: "what is the capital of X?") with
graded labels: passages about the same city are relevant (2 in the query's language,
1 in any other). Retrieval quality on it with a random tiny model is meaningless.

    python bench/data/make_sample_corpus.py   # rewrites milco_os/data/sample/ (shipped with the package)
"""

from __future__ import annotations

import json
from pathlib import Path

LANGUAGES = ("en", "de", "es", "ru", "ja", "ar")

# city, country per language (en, de, es, ru, ja, ar)
PLACES = [
    [("Berlin", "Germany"), ("Berlin", "Deutschland"), ("Berlín", "Alemania"), ("Берлин", "Германия"),
     ("ベルリン", "ドイツ"), ("برلين", "ألمانيا")],
    [("Paris", "France"), ("Paris", "Frankreich"), ("París", "Francia"), ("Париж", "Франция"),
     ("パリ", "フランス"), ("باريس", "فرنسا")],
    [("Madrid", "Spain"), ("Madrid", "Spanien"), ("Madrid", "España"), ("Мадрид", "Испания"),
     ("マドリード", "スペイン"), ("مدريد", "إسبانيا")],
    [("Rome", "Italy"), ("Rom", "Italien"), ("Roma", "Italia"), ("Рим", "Италия"),
     ("ローマ", "イタリア"), ("روما", "إيطاليا")],
    [("Moscow", "Russia"), ("Moskau", "Russland"), ("Moscú", "Rusia"), ("Москва", "Россия"),
     ("モスクワ", "ロシア"), ("موسكو", "روسيا")],
    [("Tokyo", "Japan"), ("Tokio", "Japan"), ("Tokio", "Japón"), ("Токио", "Япония"),
     ("東京", "日本"), ("طوكيو", "اليابان")],
    [("Cairo", "Egypt"), ("Kairo", "Ägypten"), ("El Cairo", "Egipto"), ("Каир", "Египет"),
     ("カイロ", "エジプト"), ("القاهرة", "مصر")],
    [("Beijing", "China"), ("Peking", "China"), ("Pekín", "China"), ("Пекин", "Китай"),
     ("北京", "中国"), ("بكين", "الصين")],
    [("London", "the United Kingdom"), ("London", "Großbritannien"), ("Londres", "Reino Unido"),
     ("Лондон", "Великобритания"), ("ロンドン", "イギリス"), ("لندن", "المملكة المتحدة")],
    [("Vienna", "Austria"), ("Wien", "Österreich"), ("Viena", "Austria"), ("Вена", "Австрия"),
     ("ウィーン", "オーストリア"), ("فيينا", "النمسا")],
    [("Lisbon", "Portugal"), ("Lissabon", "Portugal"), ("Lisboa", "Portugal"), ("Лиссабон", "Португалия"),
     ("リスボン", "ポルトガル"), ("لشبونة", "البرتغال")],
    [("Athens", "Greece"), ("Athen", "Griechenland"), ("Atenas", "Grecia"), ("Афины", "Греция"),
     ("アテネ", "ギリシャ"), ("أثينا", "اليونان")],
    [("Warsaw", "Poland"), ("Warschau", "Polen"), ("Varsovia", "Polonia"), ("Варшава", "Польша"),
     ("ワルシャワ", "ポーランド"), ("وارسو", "بولندا")],
    [("Ottawa", "Canada"), ("Ottawa", "Kanada"), ("Ottawa", "Canadá"), ("Оттава", "Канада"),
     ("オタワ", "カナダ"), ("أوتاوا", "كندا")],
    [("Canberra", "Australia"), ("Canberra", "Australien"), ("Canberra", "Australia"), ("Канберра", "Австралия"),
     ("キャンベラ", "オーストラリア"), ("كانبرا", "أستراليا")],
    [("Nairobi", "Kenya"), ("Nairobi", "Kenia"), ("Nairobi", "Kenia"), ("Найроби", "Кения"),
     ("ナイロビ", "ケニア"), ("نيروبي", "كينيا")],
    [("Lima", "Peru"), ("Lima", "Peru"), ("Lima", "Perú"), ("Лима", "Перу"),
     ("リマ", "ペルー"), ("ليما", "بيرو")],
    [("Seoul", "South Korea"), ("Seoul", "Südkorea"), ("Seúl", "Corea del Sur"), ("Сеул", "Южная Корея"),
     ("ソウル", "韓国"), ("سيول", "كوريا الجنوبية")],
    [("Bangkok", "Thailand"), ("Bangkok", "Thailand"), ("Bangkok", "Tailandia"), ("Бангкок", "Таиланд"),
     ("バンコク", "タイ"), ("بانكوك", "تايلاند")],
    [("Buenos Aires", "Argentina"), ("Buenos Aires", "Argentinien"), ("Buenos Aires", "Argentina"),
     ("Буэнос-Айрес", "Аргентина"), ("ブエノスアイレス", "アルゼンチン"), ("بوينس آيرس", "الأرجنتين")],
]

PASSAGES = {
    "en": ["{city} is the capital of {country}.",
           "The government of {country} has its seat in {city}.",
           "Every year many travellers visit {city}, the capital city of {country}.",
           "{city} is the political centre of {country} and home to its parliament.",
           "Maps of {country} mark {city} with a star because it is the capital."],
    "de": ["{city} ist die Hauptstadt von {country}.",
           "Die Regierung von {country} hat ihren Sitz in {city}.",
           "Jedes Jahr besuchen viele Reisende {city}, die Hauptstadt von {country}.",
           "{city} ist das politische Zentrum von {country} und Sitz des Parlaments.",
           "Auf Karten von {country} ist {city} als Hauptstadt mit einem Stern markiert."],
    "es": ["{city} es la capital de {country}.",
           "El gobierno de {country} tiene su sede en {city}.",
           "Cada año muchos viajeros visitan {city}, la capital de {country}.",
           "{city} es el centro político de {country} y sede de su parlamento.",
           "En los mapas de {country}, {city} aparece marcada con una estrella por ser la capital."],
    "ru": ["{city} — столица страны {country}.",
           "Правительство страны {country} находится в городе {city}.",
           "Каждый год многие путешественники посещают город {city} — столицу страны {country}.",
           "Город {city} — политический центр страны {country}, здесь заседает парламент.",
           "На картах страны {country} город {city} отмечен звездой как столица."],
    "ja": ["{city}は{country}の首都です。",
           "{country}の政府は{city}に置かれています。",
           "毎年多くの旅行者が{country}の首都である{city}を訪れます。",
           "{city}は{country}の政治の中心であり、議会があります。",
           "{country}の地図では、首都の{city}が星印で示されています。"],
    "ar": ["{city} هي عاصمة {country}.",
           "يقع مقر حكومة {country} في {city}.",
           "يزور كثير من المسافرين {city}، عاصمة {country}، كل عام.",
           "{city} هي المركز السياسي في {country} وفيها البرلمان.",
           "على خرائط {country} تظهر {city} بنجمة لأنها العاصمة."],
}

QUERIES = {
    "en": "What is the capital of {country}?",
    "de": "Was ist die Hauptstadt von {country}?",
    "es": "¿Cuál es la capital de {country}?",
    "ru": "Какой город — столица страны {country}?",
    "ja": "{country}の首都はどこですか",
    "ar": "ما هي عاصمة {country}؟",
}


def main() -> None:
    out = Path(__file__).resolve().parents[2] / "milco_os" / "data" / "sample"
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    corpus, queries, qrels = [], [], []
    for place, names in enumerate(PLACES):
        for language, (city, country) in zip(LANGUAGES, names):
            for pattern, template in enumerate(PASSAGES[language]):
                corpus.append({"_id": f"p{place:02d}-{language}-{pattern}", "lang": language,
                               "title": city, "text": template.format(city=city, country=country)})
            queries.append({"_id": f"q{place:02d}-{language}", "lang": language,
                            "text": QUERIES[language].format(country=country)})
    for query in queries:
        place, language = query["_id"][1:3], query["_id"][4:]
        for doc in corpus:
            if doc["_id"][1:3] == place:
                qrels.append((query["_id"], doc["_id"], 2 if doc["lang"] == language else 1))
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(doc, ensure_ascii=False) + "\n" for doc in corpus)
    with (out / "queries.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(query, ensure_ascii=False) + "\n" for query in queries)
    with (out / "qrels" / "test.tsv").open("w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        handle.writelines(f"{q}\t{d}\t{score}\n" for q, d, score in qrels)
    print(f"{len(corpus)} passages, {len(queries)} queries, {len(qrels)} judgements in {out}")


if __name__ == "__main__":
    main()
