#!/usr/bin/perl
# Verify every DKIM signature of the message on stdin with Perl's Mail::DKIM (an implementation
# independent of ours), asking the DNS server at 127.0.0.1:PORT; one line per signature:
# "<domain> <algorithm> <result detail>".
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;

my ($port) = @ARGV;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $port, udp_timeout => 3, tcp_timeout => 3, retry => 1,
));
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\015?\012\z/\015\012/;
    $dkim->PRINT($line);
}
$dkim->CLOSE;
foreach my $signature ($dkim->signatures) {
    print join(' ', $signature->domain, $signature->algorithm, $signature->result_detail), "\n";
}
