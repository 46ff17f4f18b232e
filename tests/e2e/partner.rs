//! partner BFF end-to-end tests (written with the BFF).
