//! The fixed sentences and headlines the deterministic generators draw from (bios,
//! descriptions, notes, reviews, terms, notification and promotion copy). Like `words`,
//! changing a list changes every generated body, so append with care.

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
