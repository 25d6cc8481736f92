"""Running mendhook on one machine and feeding it demo traffic: the `make run` supervisor, the
fake Clio sandbox, the demo law firm and the sample sender. The product apps never import it."""
