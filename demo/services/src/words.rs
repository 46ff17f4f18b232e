//! The fixed vocabularies the deterministic generators draw from. Changing any list changes
//! every generated body (and so cached bodies and recorded sizes), so append with care.

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

pub(crate) const BIO: &[&str] = &[
    "Lifelong tinkerer who believes every problem deserves a small, well-named function.",
    "Spends weekends cycling along the river and weekdays untangling distributed systems.",
    "Collects vintage keyboards and has strong opinions about switch actuation force.",
    "Former barista, current product engineer, permanent seeker of the perfect espresso.",
    "Enjoys long walks through well-documented codebases and short meetings.",
    "Volunteers at the local makerspace, teaching kids to solder their first blinking LED.",
    "Reads science fiction on the train and writes postmortems without blame at work.",
    "Grows tomatoes on a tiny balcony and measures their progress with a spreadsheet.",
    "Believes that latency budgets, like household budgets, are best planned in advance.",
    "Speaks three languages fluently and YAML with a noticeable accent.",
    "Runs a small newsletter about typography, maps and the occasional train timetable.",
    "Prefers tea over coffee, tabs over chaos, and tests over hope.",
];

pub(crate) const PRODUCT: &[&str] = &[
    "Designed for everyday use, it balances durability with a lightweight, considered form.",
    "Every unit is inspected by hand before it leaves our workshop, so quality is never a guess.",
    "The finish resists scratches and fingerprints, keeping it looking new for years.",
    "Pairs effortlessly with the rest of the collection and fits small and large spaces alike.",
    "Made from responsibly sourced materials and shipped in fully recyclable packaging.",
    "Thoughtful details such as rounded edges and a non-slip base make it a joy to use.",
    "Care is simple: wipe with a damp cloth and let it air dry; no special products needed.",
    "Backed by our no-questions-asked return policy and a generous multi-year warranty.",
    "Customers praise its quiet operation, sturdy build and the attention paid to small things.",
    "Tested in our lab for thousands of cycles to make sure it keeps working as promised.",
    "Available in several colours, each mixed to complement natural light and warm interiors.",
    "Replacement parts are stocked for at least seven years, because repair beats replacement.",
    "The compact footprint hides a surprising amount of capacity and clever storage.",
    "Assembly takes minutes with the included tool; no drilling or extra hardware required.",
];

pub(crate) const ORDER_NOTES: &[&str] = &[
    "Please leave the parcel with the neighbour if nobody answers the door.",
    "Gift order: do not include the invoice in the box.",
    "Customer asked for delivery after 5 pm on weekdays.",
    "Fragile items inside, handle with care and keep upright.",
    "Ring the bell twice; the intercom is unreliable.",
    "Support ticket opened about a delayed item; resolved with a voucher.",
    "Address verified by phone after the first delivery attempt failed.",
    "Combine with any open order to the same address if possible.",
    "Use the side entrance next to the bakery.",
    "Customer prefers recyclable packaging without plastic fillers.",
];

pub(crate) const REVIEW: &[&str] = &[
    "Arrived quickly and was exactly as described on the product page.",
    "The build quality is better than I expected for the price.",
    "After three months of daily use it still looks and works like new.",
    "Setup was painless and the instructions were actually readable.",
    "I would have liked a few more colour options, but I am happy overall.",
    "It replaced an older model I owned for years and is better in every way.",
    "Customer service answered my question within an hour, which I appreciated.",
    "Slightly heavier than I imagined, though that makes it feel solid.",
    "My family uses it every day and nobody has managed to break it yet.",
    "The packaging was minimal and recyclable, a nice touch.",
    "Good value, though the delivery took a day longer than promised.",
    "I bought a second one as a gift after using the first for a week.",
];

pub(crate) const REVIEW_TITLES: &[&str] = &[
    "Does the job",
    "Better than expected",
    "Great value",
    "Solid and reliable",
    "Almost perfect",
    "Would buy again",
    "Not bad at all",
    "Exactly what I needed",
    "A small disappointment",
    "Love it",
];

pub(crate) const TERMS: &[&str] = &[
    "Offer valid while stocks last and only for orders delivered within the European Union.",
    "Cannot be combined with other vouchers, promotions or loyalty point redemptions.",
    "Discount applies to the lowest-priced eligible item in the basket.",
    "The organiser reserves the right to end the promotion early without notice.",
    "Returns of discounted items are refunded at the price actually paid.",
    "One redemption per customer account; accounts created to abuse the offer are excluded.",
    "Prices shown include VAT; shipping costs are calculated at checkout.",
    "Gift cards and already reduced clearance items are not eligible.",
    "Personal data is processed according to our privacy notice for the promotion period.",
    "In case of a dispute the terms in the customer's language prevail.",
];

pub(crate) const NOTIFICATION_TEXT: &[&str] = &[
    "Tap to see the details and manage your preferences.",
    "We thought you would like to know as soon as possible.",
    "This update was generated automatically; no reply is needed.",
    "You can change how often we contact you in your account settings.",
    "Questions? Our support team is available every day from 8 am to 8 pm.",
    "Thank you for shopping with us, we hope to see you again soon.",
];

/// Notification kinds with the title each one uses.
pub(crate) const NOTIFICATION_KINDS: &[(&str, &str)] = &[
    ("order_update", "Your order has a new status"),
    ("price_drop", "A saved item just got cheaper"),
    ("back_in_stock", "Back in stock: an item you watched"),
    ("review_reply", "Someone replied to your review"),
    ("promotion", "A new offer picked for you"),
    ("security", "New sign-in to your account"),
];

pub(crate) const RECO_REASONS: &[&str] = &[
    "Because you viewed similar items",
    "Frequently bought together",
    "Trending in your city",
    "New arrival from a brand you like",
    "Customers like you also bought",
    "Back in stock",
];

pub(crate) const PROMO_TITLES: &[&str] = &[
    "Spring Refresh",
    "Weekend Flash Sale",
    "Members Only",
    "Free Shipping Days",
    "Bundle and Save",
    "Back to School",
    "Garden Season",
    "Kitchen Week",
    "Tech Upgrade",
    "Cosy Evenings",
    "Outdoor Adventures",
    "Last Chance",
];

pub(crate) const PROMO_SUBTITLES: &[&str] = &[
    "Up to 30% off selected items",
    "Two for the price of one",
    "Extra 10% with code DEMO10",
    "Free delivery on every order",
    "Limited stock, act fast",
    "Handpicked for you",
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
