#!/usr/bin/perl
# Sign the message on stdin with Perl's Mail::DKIM (relaxed/relaxed, rsa-sha256) and print the
# DKIM-Signature field: KEYFILE (PEM) DOMAIN SELECTOR.
use strict;
use warnings;
use Mail::DKIM::Signer;

my ($keyfile, $domain, $selector) = @ARGV;
my $dkim = Mail::DKIM::Signer->new(
    Algorithm => 'rsa-sha256', Method => 'relaxed', Domain => $domain, Selector => $selector,
    KeyFile => $keyfile, Headers => 'from:to:subject:date:message-id',
);
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\015?\012\z/\015\012/;
    $dkim->PRINT($line);
}
$dkim->CLOSE;
print $dkim->signature->as_string, "\015\012";
