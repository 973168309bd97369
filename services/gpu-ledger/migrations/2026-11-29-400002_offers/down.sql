DROP TABLE IF EXISTS gpu_eliminations;
DROP TABLE IF EXISTS gpu_tranches;
DROP TABLE IF EXISTS gpu_offer_acceptances;
DROP TABLE IF EXISTS gpu_offer_reservations;
DROP TABLE IF EXISTS gpu_offers;
DROP TABLE IF EXISTS gpu_teams;
