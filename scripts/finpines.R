# Writes the Finnish pines point pattern (R package spatstat.data, Debian's
# r-cran-spatstat.data) as the CSV the lgcp energy reads: a header x,y, one
# point per line in the data's own coordinates, and a '# window:' comment so
# that the energy rescales to the unit square. Usage: Rscript finpines.R OUT.csv
args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 1) stop("usage: Rscript finpines.R OUT.csv")
out <- args[1]
p <- spatstat.data::finpines
xr <- p$window$xrange
yr <- p$window$yrange
tmp <- paste0(out, ".tmp")
con <- file(tmp, "w")
cat(sprintf("# finpines from R package spatstat.data %s: %d trees (Finnish pines)\n",
            as.character(utils::packageVersion("spatstat.data")), p$n), file = con)
cat(sprintf("# window: %.17g %.17g %.17g %.17g\n", xr[1], xr[2], yr[1], yr[2]), file = con)
cat("x,y\n", file = con)
cat(sprintf("%.17g,%.17g\n", p$x, p$y), sep = "", file = con)
close(con)
if (!file.rename(tmp, out)) stop(paste("cannot rename", tmp, "to", out))
