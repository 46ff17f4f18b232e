//! The fixed vocabularies (names, places, catalog words) the deterministic generators draw
//! from; the sentences are in `texts`. Changing any list changes every generated body (and so
//! cached bodies and recorded sizes), so append with care.

pub(crate) const FIRST_NAMES: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Donald",
    "Hedy",
    "Tim",
    "Katherine",
    "John",
    "Sophie",
    "Lukas",
    "Emma",
    "Noah",
    "Mila",
    "Jonas",
    "Lea",
    "Finn",
    "Clara",
    "Elias",
    "Ines",
    "Mateo",
    "Chloe",
    "Luca",
    "Freya",
    "Oskar",
];

pub(crate) const LAST_NAMES: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Knuth",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
    "McCarthy",
    "Wilson",
    "Schmidt",
    "Dubois",
    "Jansen",
    "Rossi",
    "Garcia",
    "Novak",
    "Nielsen",
    "Kowalski",
    "Silva",
    "Murphy",
    "Larsen",
    "Virtanen",
    "Horvat",
    "Peeters",
    "Keller",
];

pub(crate) const STREETS: &[&str] = &[
    "Market Street",
    "Harbour Road",
    "Station Square",
    "Canal Walk",
    "Mill Lane",
    "Church Street",
    "Park Avenue",
    "Bridge Road",
    "Kings Row",
    "Garden Terrace",
    "Orchard Close",
    "River View",
    "Linden Allee",
    "Rue des Fleurs",
    "Via Roma",
    "Calle Mayor",
];

/// A city with the country, time zone and locale its residents get.
pub(crate) struct City {
    pub(crate) name: &'static str,
    pub(crate) country: &'static str,
    pub(crate) timezone: &'static str,
    pub(crate) locale: &'static str,
}

const fn city(
    name: &'static str,
    country: &'static str,
    timezone: &'static str,
    locale: &'static str,
) -> City {
    City {
        name,
        country,
        timezone,
        locale,
    }
}

pub(crate) const CITIES: &[City] = &[
    city("Berlin", "DE", "Europe/Berlin", "de-DE"),
    city("Hamburg", "DE", "Europe/Berlin", "de-DE"),
    city("Paris", "FR", "Europe/Paris", "fr-FR"),
    city("Lyon", "FR", "Europe/Paris", "fr-FR"),
    city("Amsterdam", "NL", "Europe/Amsterdam", "nl-NL"),
    city("Madrid", "ES", "Europe/Madrid", "es-ES"),
    city("Milan", "IT", "Europe/Rome", "it-IT"),
    city("Vienna", "AT", "Europe/Vienna", "de-AT"),
    city("Lisbon", "PT", "Europe/Lisbon", "pt-PT"),
    city("Dublin", "IE", "Europe/Dublin", "en-IE"),
    city("London", "GB", "Europe/London", "en-GB"),
    city("Stockholm", "SE", "Europe/Stockholm", "sv-SE"),
    city("Copenhagen", "DK", "Europe/Copenhagen", "da-DK"),
    city("Warsaw", "PL", "Europe/Warsaw", "pl-PL"),
    city("Brussels", "BE", "Europe/Brussels", "fr-BE"),
    city("Zurich", "CH", "Europe/Zurich", "de-CH"),
];

pub(crate) const ADJECTIVES: &[&str] = &[
    "Compact",
    "Classic",
    "Modern",
    "Rugged",
    "Smart",
    "Vintage",
    "Deluxe",
    "Eco",
    "Portable",
    "Premium",
    "Minimal",
    "Ergonomic",
    "Wireless",
    "Handmade",
    "Foldable",
    "Heavy-Duty",
];

pub(crate) const MATERIALS: &[&str] = &[
    "Bamboo",
    "Steel",
    "Oak",
    "Ceramic",
    "Linen",
    "Carbon",
    "Walnut",
    "Cotton",
    "Aluminium",
    "Glass",
    "Leather",
    "Wool",
];

/// The eight catalog categories, their SKU codes and the nouns their titles use.
pub(crate) const CATEGORIES: [&str; 8] = [
    "electronics",
    "home",
    "kitchen",
    "garden",
    "sports",
    "toys",
    "books",
    "fashion",
];
pub(crate) const CATEGORY_CODES: [&str; 8] = ["EL", "HO", "KI", "GA", "SP", "TO", "BO", "FA"];
pub(crate) const NOUNS: [&[&str]; 8] = [
    &[
        "Headphones",
        "Speaker",
        "Charger",
        "Keyboard",
        "Monitor",
        "Camera",
        "Router",
        "Smartwatch",
    ],
    &[
        "Lamp", "Rug", "Cushion", "Shelf", "Mirror", "Clock", "Vase", "Blanket",
    ],
    &[
        "Kettle",
        "Skillet",
        "Knife Set",
        "Blender",
        "Teapot",
        "Cutting Board",
        "Grinder",
        "Bowl",
    ],
    &[
        "Planter",
        "Hose",
        "Trowel",
        "Bird Feeder",
        "Lantern",
        "Pruner",
        "Watering Can",
        "Hammock",
    ],
    &[
        "Yoga Mat",
        "Dumbbell",
        "Bottle",
        "Backpack",
        "Racket",
        "Jump Rope",
        "Bike Light",
        "Vest",
    ],
    &[
        "Puzzle",
        "Building Set",
        "Kite",
        "Plush Bear",
        "Train Set",
        "Board Game",
        "Robot Kit",
    ],
    &[
        "Notebook",
        "Cookbook",
        "Atlas",
        "Novel",
        "Field Guide",
        "Sketchbook",
        "Planner",
    ],
    &[
        "Scarf",
        "Jacket",
        "Sneakers",
        "Wallet",
        "Belt",
        "Beanie",
        "Tote Bag",
        "Sunglasses",
    ],
];

pub(crate) const BRANDS: &[&str] = &[
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Tailspin",
    "Wingtip",
    "Adventure Works",
    "Litware",
    "Proseware",
    "Lamna",
    "Fourth Coffee",
    "Alpine Ski House",
    "Humongous",
    "Trey Research",
    "Woodgrove",
    "Coho",
    "Blue Yonder",
];

pub(crate) const COLORS: &[&str] = &[
    "black",
    "white",
    "slate",
    "sand",
    "forest green",
    "navy",
    "terracotta",
    "mustard",
];

pub(crate) const WAREHOUSES: &[&str] = &["BER-1", "AMS-2", "MAD-1", "MIL-3", "WAW-1", "DUB-2"];

/// Who changed an entity last, as the audit block says.
pub(crate) const ACTORS: &[&str] = &[
    "svc-importer",
    "ops.anna",
    "ops.jonas",
    "catalog-sync",
    "crm-bridge",
    "batch-nightly",
    "support.mira",
    "migration-2023",
];

pub(crate) const CARRIERS: &[&str] = &["DHL", "UPS", "DPD", "GLS", "PostNL"];

pub(crate) const HUBS: &[&str] = &[
    "Leipzig Hub",
    "Amsterdam Sorting Centre",
    "Madrid Depot",
    "Milan Linate Hub",
    "Warsaw Distribution Centre",
    "Dublin Depot",
    "Paris Nord Hub",
    "Vienna Airport Hub",
];

pub(crate) const PAYMENT_BRANDS: &[&str] = &["VISA", "MASTERCARD", "AMEX", "MAESTRO"];
