#include "live.h"

void live_add(struct live_list *l, struct live *e)
{
	if (e->list)
		return;
	e->list = l;
	e->id = ++l->next_id;
	e->prev = NULL;
	e->next = l->head;
	if (l->head)
		l->head->prev = e;
	l->head = e;
	l->n++;
}

void live_del(struct live *e)
{
	struct live_list *l = e->list;

	if (!l)
		return;
	if (e->prev)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	e->prev = e->next = NULL;
	e->list = NULL;
	l->n--;
}
