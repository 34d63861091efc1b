#!/usr/bin/perl
# Runs each contender of boot_bench.sh ROUNDS times, interleaved, and times, from the moment
# the VMM is started, the first console line that says the guest's init runs. One process
# does all the timestamping (no fork per line), so every VMM is measured the same way.
use strict;
use warnings;
use Time::HiRes qw(time);

my ($rounds, $contenders_file) = @ARGV;
open(my $cf, '<', $contenders_file) or die "cannot read $contenders_file: $!";
my @contenders = map { chomp; my ($n, $p, $c) = split /\t/; { name => $n, prepare => $p, cmd => $c } } <$cf>;
close $cf;

my $timeout_s = 300;
my (%times, %exits, %failures, %by_round);
for my $round (1 .. $rounds) {
  for my $c (@contenders) {
    system('sh', '-c', $c->{prepare}) == 0 or die "prepare failed for $c->{name}";
    my $err_file = "/tmp/minivmm-bench-stderr.$$";
    my $start = time;
    my $pid = open(my $out, '-|');
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
      open(STDERR, '>', $err_file) or die;
      open(STDIN, '<', '/dev/null') or die;
      exec('timeout', $timeout_s, 'sh', '-c', $c->{cmd}) or die "exec: $!";
    }
    my $init_at;
    while (my $line = <$out>) {
      if (!defined $init_at && $line =~ /MINIVMM-L2-INIT/) { $init_at = time - $start; }
    }
    close $out;
    my $rc = $? >> 8;
    if (defined $init_at && $rc == 0) {
      push @{ $times{ $c->{name} } }, $init_at;
      $by_round{$round}{ $c->{name} } = $init_at;
    } else {
      $failures{ $c->{name} }++;
      printf STDERR "boot_bench: %s round %d failed (exit %d, init %s)\n", $c->{name}, $round, $rc,
          defined $init_at ? 'seen' : 'not seen';
    }
    if (open(my $ef, '<', $err_file)) {
      while (<$ef>) { push @{ $exits{ $c->{name} } }, $1 if /vCPU exits: (.*)$/; }
      close $ef;
    }
    unlink $err_file;
    printf "round %d  %-14s %s\n", $round, $c->{name},
        defined $init_at ? sprintf('%.2f s to init', $init_at) : 'no init';
  }
}

sub median {
  my @s = sort { $a <=> $b } @_;
  return undef unless @s;
  return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

print "\nSeconds from VMM start to the guest's first init line (median of $rounds rounds)\n";
printf "%-14s %8s %8s %8s %6s  %s\n", 'vmm', 'median', 'min', 'max', 'fails', 'minivmm vCPU exits (last run)';
my %median;
for my $c (@contenders) {
  my @t = @{ $times{ $c->{name} } || [] };
  $median{ $c->{name} } = median(@t);
  my $exits = $exits{ $c->{name} } ? $exits{ $c->{name} }[-1] : '';
  printf "%-14s %8s %8s %8s %6d  %s\n", $c->{name},
      (map { defined $_ ? sprintf('%.2f', $_) : '-' } median(@t), (sort { $a <=> $b } @t)[0],
       (sort { $b <=> $a } @t)[0]),
      $failures{ $c->{name} } || 0, $exits;
}
my ($warm, $guest, $qemu) = @median{ 'minivmm warm', 'minivmm guest', 'qemu microvm' };
print "\n";
if (defined $warm && defined $qemu) {
  printf "warm / qemu microvm  = %.2f (target <= 0.50)\n", $warm / $qemu;
}
if (defined $warm && defined $guest) {
  printf "warm / minivmm guest = %.2f (target <= 0.60)\n", $warm / $guest;
}

# The contenders of one round run back to back, so a ratio taken within each round cancels the
# machine's slower drifts in speed; the median of those is the steadier estimate.
for my $pair (['minivmm warm', 'qemu microvm'], ['minivmm warm', 'minivmm guest']) {
  my @ratios = map { $by_round{$_}{ $pair->[0] } / $by_round{$_}{ $pair->[1] } }
      grep { defined $by_round{$_}{ $pair->[0] } && defined $by_round{$_}{ $pair->[1] } }
      sort { $a <=> $b } keys %by_round;
  next unless @ratios;
  printf "%s / %s, per round: median %.2f (%s)\n", @$pair, median(@ratios),
      join(' ', map { sprintf '%.2f', $_ } @ratios);
}
